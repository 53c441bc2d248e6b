#include "postwatch/signing.hpp"

#include "postwatch/secret_file.hpp"
#include "postwatch/verify_key.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace postwatch {

struct SigningKey::Pkey {
  EVP_PKEY* key = nullptr;
  ~Pkey() { EVP_PKEY_free(key); }
};

namespace {

struct MdCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~MdCtx() { EVP_MD_CTX_free(ctx); }
};

PublicKey raw_public(EVP_PKEY* key) {
  PublicKey out{};
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1 || len != out.size())
    throw std::runtime_error("cannot read an Ed25519 public key");
  return out;
}

}  // namespace

std::string key_id_of(const PublicKey& key) {
  std::uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(key.data(), key.size(), digest);
  return to_hex(std::span<const std::uint8_t>(digest, 8));
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

bool from_hex(std::string_view text, std::span<std::uint8_t> out) {
  if (text.size() != out.size() * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::optional<PublicKey> public_key_from_hex(std::string_view text) {
  PublicKey k{};
  if (!from_hex(text, k)) return std::nullopt;
  return k;
}

SigningKey::SigningKey(std::shared_ptr<Pkey> key)
    : key_(std::move(key)), public_(raw_public(key_->key)), key_id_(key_id_of(public_)) {}

SigningKey SigningKey::from_external(std::shared_ptr<const External> key, const PublicKey& public_key) {
  if (!key) throw std::logic_error("SigningKey::from_external: no key");
  SigningKey out(public_key);
  out.external_ = std::move(key);
  return out;
}

SigningKey::SigningKey(const PublicKey& public_key) : public_(public_key), key_id_(key_id_of(public_)) {}

SigningKey SigningKey::generate() {
  auto p = std::make_shared<Pkey>();
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  bool ok = ctx && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &p->key) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) throw std::runtime_error("cannot generate an Ed25519 key (OpenSSL)");
  return SigningKey(std::move(p));
}

SigningKey SigningKey::from_seed(const std::array<std::uint8_t, 32>& seed) {
  auto p = std::make_shared<Pkey>();
  p->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
  if (!p->key) throw std::runtime_error("cannot make an Ed25519 key from a seed (OpenSSL)");
  return SigningKey(std::move(p));
}

SigningKey SigningKey::load(const std::filesystem::path& file) {
  if (auto why = secret_file_exposure(file); !why.empty()) throw std::runtime_error(why);
  FILE* f = std::fopen(file.c_str(), "r");
  if (!f) throw std::runtime_error("cannot read the key " + file.string() + ": " + std::strerror(errno));
  auto p = std::make_shared<Pkey>();
  p->key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!p->key) throw std::runtime_error(file.string() + " holds no PEM private key");
  if (EVP_PKEY_get_id(p->key) != EVP_PKEY_ED25519)
    throw std::runtime_error(file.string() + " holds a private key that is not Ed25519");
  return SigningKey(std::move(p));
}

SigningKey SigningKey::load_or_create(const std::filesystem::path& file, bool& created) {
  created = false;
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) return load(file);
  auto key = generate();
  key.save(file);
  created = true;
  return key;
}

void SigningKey::save(const std::filesystem::path& file) const {
  const std::string reference = external_ ? external_->reference() + "\n" : std::string();
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create the key file " + file.string() + ": " + std::strerror(errno));
  FILE* f = ::fdopen(fd, "w");
  if (!f) {
    ::close(fd);
    throw std::runtime_error("cannot write " + file.string());
  }
  bool ok = external_ ? std::fwrite(reference.data(), 1, reference.size(), f) == reference.size()
                      : PEM_write_PrivateKey(f, key_->key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  ok = std::fflush(f) == 0 && ::fsync(fd) == 0 && ok;
  std::fclose(f);
  if (!ok) {
    std::filesystem::remove(file);
    throw std::runtime_error("cannot write the key file " + file.string());
  }
}

Signature SigningKey::sign(std::span<const std::uint8_t> message) const {
  if (external_) return external_->sign(message);
  MdCtx md;
  Signature sig{};
  std::size_t len = sig.size();
  if (!md.ctx || EVP_DigestSignInit(md.ctx, nullptr, nullptr, nullptr, key_->key) != 1 ||
      EVP_DigestSign(md.ctx, sig.data(), &len, message.data(), message.size()) != 1 || len != sig.size())
    throw std::runtime_error("Ed25519 signing failed (OpenSSL)");
  return sig;
}

bool verify_signature(const PublicKey& key, std::span<const std::uint8_t> message,
                      std::span<const std::uint8_t> signature) {
  try {
    return VerifyKey(key).verify(message, signature);
  } catch (const std::runtime_error&) {  // a key OpenSSL refuses verifies nothing
    return false;
  }
}

struct VerifyKey::Pkey {
  EVP_PKEY* key = nullptr;
  ~Pkey() { EVP_PKEY_free(key); }
};

VerifyKey::VerifyKey(const PublicKey& key, Ed25519Check check) : key_(key), check_(check) {
  auto p = std::make_shared<Pkey>();
  p->key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size());
  if (!p->key) throw std::runtime_error("OpenSSL refused an Ed25519 public key");
  pkey_ = std::move(p);
}

bool VerifyKey::verify(std::span<const std::uint8_t> message, std::span<const std::uint8_t> signature) const {
  if (signature.size() != kSignatureBytes) return false;
  if (check_) return check_(key_, message, signature);
  MdCtx md;
  return md.ctx && EVP_DigestVerifyInit(md.ctx, nullptr, nullptr, nullptr, pkey_->key) == 1 &&
         EVP_DigestVerify(md.ctx, signature.data(), signature.size(), message.data(), message.size()) == 1;
}

namespace {
// The payload with its signature zeroed, and the signature: what verify_payload checks.
bool split_signed(std::span<const std::uint8_t> payload, std::size_t signature_offset, std::vector<std::uint8_t>& copy,
                  Signature& sig) {
  if (signature_offset == 0 || signature_offset + kSignatureBytes > payload.size()) return false;
  copy.assign(payload.begin(), payload.end());
  std::memcpy(sig.data(), copy.data() + signature_offset, sig.size());
  std::memset(copy.data() + signature_offset, 0, kSignatureBytes);
  return true;
}
}  // namespace

bool VerifyKey::verify_payload(std::span<const std::uint8_t> payload, std::size_t signature_offset) const {
  thread_local std::vector<std::uint8_t> copy;  // reused: batches are verified on the hot path
  Signature sig{};
  return split_signed(payload, signature_offset, copy, sig) && verify(copy, sig);
}

void sign_payload(std::vector<std::uint8_t>& payload, std::size_t signature_offset, const SigningKey& key) {
  if (signature_offset == 0 || signature_offset + kSignatureBytes > payload.size())
    throw std::logic_error("sign_payload: no room for the signature");
  std::memset(payload.data() + signature_offset, 0, kSignatureBytes);
  auto sig = key.sign(payload);
  std::memcpy(payload.data() + signature_offset, sig.data(), sig.size());
}

bool verify_payload(std::span<const std::uint8_t> payload, std::size_t signature_offset, const PublicKey& key) {
  thread_local std::vector<std::uint8_t> copy;
  Signature sig{};
  return split_signed(payload, signature_offset, copy, sig) && verify_signature(key, copy, sig);
}

std::array<std::uint8_t, 32> hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> message) {
  std::array<std::uint8_t, 32> out{};
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), message.data(), message.size(), out.data(), &len) ||
      len != out.size())
    throw std::runtime_error("HMAC-SHA256 failed (OpenSSL)");
  return out;
}

std::vector<std::uint8_t> random_bytes(std::size_t n) {
  std::vector<std::uint8_t> out(n);
  if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) throw std::runtime_error("no random bytes (OpenSSL)");
  return out;
}

}  // namespace postwatch
