#include "postwatch/agent/spool_cipher.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace postwatch::agent {

namespace {

[[noreturn]] void fail(const char* what) { throw std::runtime_error(std::string("spool cipher: ") + what); }

const char* openssl_name(SpoolAead aead) { return aead == SpoolAead::Aes256Gcm ? "AES-256-GCM" : "ChaCha20-Poly1305"; }

// HKDF-SHA256(ikm = spool key, salt = segment id, info = label || AEAD id): the segment's key.
std::array<unsigned char, SpoolKey::kBytes> derive_segment_key(const SpoolKey& key, SpoolAead aead,
                                                               std::string_view segment_id) {
  std::string info = "postwatch spool segment key";
  info += static_cast<char>(aead);
  std::array<unsigned char, SpoolKey::kBytes> out{};
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (!ctx) fail("HKDF is not available");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(key.bytes().data()),
                                        key.bytes().size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(segment_id.data()), segment_id.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()), OSSL_PARAM_construct_end()};
  int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) fail("HKDF failed");
  return out;
}

}  // namespace

const char* aead_name(SpoolAead aead) { return aead == SpoolAead::Aes256Gcm ? "aes-256-gcm" : "chacha20-poly1305"; }

bool is_known_aead(std::uint8_t id) {
  return id == static_cast<std::uint8_t>(SpoolAead::ChaCha20Poly1305) ||
         id == static_cast<std::uint8_t>(SpoolAead::Aes256Gcm);
}

struct SpoolCipher::Impl {
  EVP_CIPHER* cipher = nullptr;
  EVP_CIPHER_CTX* enc = nullptr;  // keyed once; each record sets only its nonce
  EVP_CIPHER_CTX* dec = nullptr;
  std::string aad;  // header || u64 offset, little-endian (the last 8 bytes change per record)
  // Random nonces fetched in bulk: one RAND_bytes call costs ~2 us, more than the rest of a
  // record's sealing; each nonce is still 12 fresh bytes from the generator, used once. Only
  // the writer's segment needs them (allocated at its first record).
  static constexpr std::size_t kNoncePool = 340 * kNonceBytes;
  std::vector<unsigned char> nonces;
  std::size_t nonces_used = kNoncePool;

  ~Impl() {
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
    EVP_CIPHER_free(cipher);
  }
  const unsigned char* next_nonce() {
    if (nonces_used + kNonceBytes > kNoncePool) {
      nonces.resize(kNoncePool);
      if (RAND_bytes(nonces.data(), static_cast<int>(nonces.size())) != 1) return nullptr;
      nonces_used = 0;
    }
    const unsigned char* n = nonces.data() + nonces_used;
    nonces_used += kNonceBytes;
    return n;
  }
  void set_offset(std::uint64_t offset) {
    char* p = aad.data() + aad.size() - 8;
    for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(offset >> (8 * i));
  }
  const unsigned char* aad_bytes() const { return reinterpret_cast<const unsigned char*>(aad.data()); }
  int aad_len() const { return static_cast<int>(aad.size()); }
};

SpoolCipher::SpoolCipher(const SpoolKey& key, SpoolAead aead, std::string_view segment_id, std::string_view header)
    : impl_(std::make_unique<Impl>()) {
  auto k = derive_segment_key(key, aead, segment_id);
  Impl& m = *impl_;
  m.cipher = EVP_CIPHER_fetch(nullptr, openssl_name(aead), nullptr);
  m.enc = EVP_CIPHER_CTX_new();
  m.dec = EVP_CIPHER_CTX_new();
  bool ok = m.cipher && m.enc && m.dec && EVP_EncryptInit_ex2(m.enc, m.cipher, k.data(), nullptr, nullptr) == 1 &&
            EVP_DecryptInit_ex2(m.dec, m.cipher, k.data(), nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_get_iv_length(m.enc) == static_cast<int>(kNonceBytes);
  OPENSSL_cleanse(k.data(), k.size());
  if (!ok) fail(openssl_name(aead));
  m.aad.assign(header);
  m.aad.append(8, '\0');
}

SpoolCipher::~SpoolCipher() = default;

void SpoolCipher::seal(std::string_view plain, std::uint64_t offset, std::string& out) {
  Impl& m = *impl_;
  m.set_offset(offset);
  const std::size_t at = out.size();
  out.resize(at + kOverhead + plain.size());
  auto* nonce = reinterpret_cast<unsigned char*>(out.data() + at);
  auto* ct = nonce + kNonceBytes;
  auto* tag = ct + plain.size();
  int n = 0, fin = 0;
  const unsigned char* fresh = m.next_nonce();
  if (fresh) std::memcpy(nonce, fresh, kNonceBytes);
  if (!fresh || EVP_EncryptInit_ex2(m.enc, nullptr, nullptr, nonce, nullptr) != 1 ||
      EVP_EncryptUpdate(m.enc, nullptr, &n, m.aad_bytes(), m.aad_len()) != 1 ||
      EVP_EncryptUpdate(m.enc, ct, &n, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(m.enc, ct + n, &fin) != 1 || static_cast<std::size_t>(n + fin) != plain.size() ||
      EVP_CIPHER_CTX_ctrl(m.enc, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), tag) != 1) {
    out.resize(at);
    fail("sealing a record failed");
  }
}

bool SpoolCipher::open(std::string_view sealed, std::uint64_t offset, std::string& plain) {
  plain.clear();
  if (sealed.size() < kOverhead) return false;
  Impl& m = *impl_;
  m.set_offset(offset);
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  const auto* ct = nonce + kNonceBytes;
  const std::size_t ct_len = sealed.size() - kOverhead;
  unsigned char tag[kTagBytes];
  std::memcpy(tag, ct + ct_len, kTagBytes);
  plain.resize(ct_len);
  auto* pt = reinterpret_cast<unsigned char*>(plain.data());
  int n = 0, fin = 0;
  bool ok = EVP_DecryptInit_ex2(m.dec, nullptr, nullptr, nonce, nullptr) == 1 &&
            EVP_DecryptUpdate(m.dec, nullptr, &n, m.aad_bytes(), m.aad_len()) == 1 &&
            EVP_DecryptUpdate(m.dec, pt, &n, ct, static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(m.dec, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes), tag) == 1 &&
            EVP_DecryptFinal_ex(m.dec, pt + n, &fin) == 1;
  if (!ok) {
    // GCM decrypts before it verifies: nothing of a failing record may leave here.
    OPENSSL_cleanse(plain.data(), plain.size());
    plain.clear();
  }
  return ok;
}

}  // namespace postwatch::agent
