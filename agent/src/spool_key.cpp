#include "postwatch/agent/spool_key.hpp"

#include "postwatch/secret_file.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace postwatch::agent {
namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// What to do about a key file that cannot be used, for every refusal below.
std::string replace_hint(const fs::path& file) {
  return "restore this agent's key file, or move " + file.string() +
         " away so that the agent creates a new key (segments written under the old key are then kept aside, "
         "not delivered)";
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, const unsigned char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Creates `file` with fresh random bytes; false if it exists already (another process won the race).
bool create_key_file(const fs::path& file) {
  std::error_code ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
  SpoolKey::Bytes fresh{};
  if (RAND_priv_bytes(fresh.data(), static_cast<int>(fresh.size())) != 1)
    throw SpoolKeyError("cannot create " + file.string() + ": the random generator failed");
  Fd f;
  f.fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (f.fd < 0 && errno == EEXIST) return false;
  if (f.fd < 0)
    throw SpoolKeyError("cannot create " + file.string() + ": " + errno_text() +
                        "; its directory must be writable by uid " + std::to_string(::geteuid()) +
                        " (or create the key beforehand: head -c 32 /dev/urandom > " + file.string() + "; chmod 600 " +
                        file.string() + ")");
  // The mode is 0600 whatever the umask; the bytes reach the device, and so does the file's
  // name (its directory synced), before any segment is sealed with the key.
  bool ok = ::fchmod(f.fd, 0600) == 0 && write_all(f.fd, fresh.data(), fresh.size()) && ::fsync(f.fd) == 0;
  OPENSSL_cleanse(fresh.data(), fresh.size());
  if (!ok) {
    std::string why = errno_text();
    ::unlink(file.c_str());
    throw SpoolKeyError("cannot write " + file.string() + ": " + why);
  }
  Fd dir;
  dir.fd = ::open(file.has_parent_path() ? file.parent_path().c_str() : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir.fd >= 0) ::fsync(dir.fd);
  return true;
}

}  // namespace

std::string to_hex(const unsigned char* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

SpoolKey::SpoolKey(const Bytes& bytes) : key_(bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(key_.data(), key_.size(), digest, &len, EVP_sha256(), nullptr) != 1 || len < id_.size())
    throw SpoolKeyError("SHA-256 is not available");
  std::memcpy(id_.data(), digest, id_.size());
}

SpoolKey::~SpoolKey() { OPENSSL_cleanse(key_.data(), key_.size()); }

std::string SpoolKey::id_hex() const { return to_hex(id_.data(), id_.size()); }

SpoolKey SpoolKey::load(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw SpoolKeyError("cannot read " + file.string() + ": " + errno_text());
  if (!S_ISREG(st.st_mode)) throw SpoolKeyError(file.string() + " is not a regular file");
  if (auto why = postwatch::secret_file_exposure(file); !why.empty()) throw SpoolKeyError(why);
  if (st.st_size != static_cast<off_t>(kBytes))
    throw SpoolKeyError(file.string() + " holds " + std::to_string(st.st_size) + " byte(s); a spool key is exactly " +
                        std::to_string(kBytes) + " random bytes (raw, not hex or base64): " + replace_hint(file));
  Fd f;
  f.fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) throw SpoolKeyError("cannot read " + file.string() + ": " + errno_text());
  Bytes key{};
  std::size_t got = 0;
  while (got < key.size()) {
    ssize_t r = ::read(f.fd, key.data() + got, key.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  if (got != key.size()) {
    OPENSSL_cleanse(key.data(), key.size());
    throw SpoolKeyError("cannot read " + file.string() + ": short read");
  }
  SpoolKey k(key);
  OPENSSL_cleanse(key.data(), key.size());
  return k;
}

SpoolKey SpoolKey::load_or_create(const fs::path& file, bool& created) {
  created = false;
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0 && errno == ENOENT) created = create_key_file(file);
  return load(file);
}

std::string spool_key_file_problem(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) return "";
  try {
    SpoolKey::load(file);
  } catch (const SpoolKeyError& e) {
    return e.what();
  }
  return "";
}

fs::path default_spool_key_file(const fs::path& spool_dir) {
  fs::path dir = spool_dir.has_filename() ? spool_dir : spool_dir.parent_path();
  return fs::path(dir.string() + ".key");
}

}  // namespace postwatch::agent
