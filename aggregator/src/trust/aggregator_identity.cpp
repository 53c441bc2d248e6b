#include "trust/aggregator_identity.hpp"

#include "postwatch/enrolment.hpp"
#include "postwatch/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace postwatch::aggregator {

namespace {

std::vector<std::uint8_t> load_or_create_secret(const std::filesystem::path& file, bool& created) {
  created = false;
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    auto secret = random_bytes(32);
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + file.string() + ": " + std::strerror(errno));
    bool ok = ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error("cannot write " + file.string() + ": " + std::strerror(errno));
    created = true;
    return secret;
  }
  if (auto why = secret_file_exposure(file); !why.empty()) throw std::runtime_error(why);
  std::ifstream in(file, std::ios::binary);
  std::vector<std::uint8_t> secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (secret.size() != 32)
    throw std::runtime_error(file.string() + " holds " + std::to_string(secret.size()) +
                             " bytes, not the 32 of an enrolment secret; restore it from a backup (a new one "
                             "makes every token not yet used worthless)");
  return secret;
}

constexpr const char* kNextKeyFile = "aggregator.next.key";
constexpr const char* kRetiredFile = "retired.pub";

void fsync_path(const std::filesystem::path& p, int flags) {
  if (int fd = ::open(p.c_str(), flags | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AggregatorIdentity AggregatorIdentity::load_or_create(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create the keys directory " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  bool key_created = false, secret_created = false;
  auto key = SigningKey::load_or_create(dir / "aggregator.key", key_created);
  auto secret = load_or_create_secret(dir / "enrolment.secret", secret_created);
  AggregatorIdentity id{std::move(key), std::move(secret), {}, dir, std::nullopt, {}};
  if (key_created) id.created.push_back((dir / "aggregator.key").string());
  if (secret_created) id.created.push_back((dir / "enrolment.secret").string());
  if (std::filesystem::exists(dir / kNextKeyFile, ec)) id.next = SigningKey::load(dir / kNextKeyFile);
  // A switch cut short between its two steps lists the key in force (or the next) as retired.
  std::vector<PublicKey> retired;
  if (std::filesystem::exists(dir / kRetiredFile, ec)) retired = read_public_keys(dir / kRetiredFile);
  for (const auto& k : retired)
    if (k != id.key.public_key() && !(id.next && k == id.next->public_key())) id.retired.push_back(k);
  if (id.next && id.next->public_key() == id.key.public_key()) id.next.reset();
  return id;
}

const SigningKey& AggregatorIdentity::prepare_next() {
  if (!next) {
    auto k = SigningKey::generate();
    k.save(dir / kNextKeyFile);
    fsync_path(dir, O_RDONLY | O_DIRECTORY);
    next = std::move(k);
  }
  return *next;
}

void AggregatorIdentity::switch_to_next() {
  if (!next) throw std::logic_error("no next key is prepared");
  auto kept = retired;
  std::erase(kept, key.public_key());
  kept.push_back(key.public_key());
  if (kept.size() > kMaxRetired) kept.erase(kept.begin(), kept.end() - static_cast<std::ptrdiff_t>(kMaxRetired));
  write_public_keys(dir / kRetiredFile, kept,
                    "Keys this aggregator signed with before, newest last: confirmations tell agents to stop trusting "
                    "them (docs/security.md).");
  std::error_code ec;
  std::filesystem::rename(dir / kNextKeyFile, dir / "aggregator.key", ec);
  if (ec)
    throw std::runtime_error("cannot move " + (dir / kNextKeyFile).string() + " over " +
                             (dir / "aggregator.key").string() + ": " + ec.message());
  fsync_path(dir, O_RDONLY | O_DIRECTORY);
  retired = std::move(kept);
  key = std::move(*next);  // the same object: whoever signs through a reference now signs with it
  next.reset();
}

std::vector<std::string> AggregatorIdentity::retired_key_ids() const {
  std::vector<std::string> ids;
  for (const auto& k : retired) ids.push_back(key_id_of(k));
  return ids;
}

std::filesystem::path AggregatorIdentity::next_key_file() const { return dir / kNextKeyFile; }

}  // namespace postwatch::aggregator
