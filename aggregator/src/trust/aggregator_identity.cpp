#include "trust/aggregator_identity.hpp"

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

}  // namespace

AggregatorIdentity AggregatorIdentity::load_or_create(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create the keys directory " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  bool key_created = false, secret_created = false;
  auto key = SigningKey::load_or_create(dir / "aggregator.key", key_created);
  auto secret = load_or_create_secret(dir / "enrolment.secret", secret_created);
  AggregatorIdentity id{std::move(key), std::move(secret), {}};
  if (key_created) id.created.push_back((dir / "aggregator.key").string());
  if (secret_created) id.created.push_back((dir / "enrolment.secret").string());
  return id;
}

}  // namespace postwatch::aggregator
