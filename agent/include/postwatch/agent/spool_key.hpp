// The spool's key at rest: 32 random bytes in a file only the agent's user may read, created by
// the agent when it is missing (docs/agent.md, "Encryption at rest"). Its id, the first 8 bytes of
// SHA-256 of the key, is written into every encrypted segment's header.
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace postwatch::agent {

// A key file that cannot be used: the message names the file and the fix, never the key.
class SpoolKeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SpoolKey {
 public:
  static constexpr std::size_t kBytes = 32;
  static constexpr std::size_t kIdBytes = 8;
  using Bytes = std::array<unsigned char, kBytes>;
  using Id = std::array<unsigned char, kIdBytes>;

  explicit SpoolKey(const Bytes& bytes);
  SpoolKey(const SpoolKey& other) : SpoolKey(other.key_) {}
  SpoolKey& operator=(const SpoolKey&) = delete;
  ~SpoolKey();  // wipes the key from memory

  // Reads `file`: a regular file of exactly 32 bytes that group and others may not read.
  static SpoolKey load(const std::filesystem::path& file);
  // As load, but when `file` does not exist creates it first (32 random bytes, mode 0600,
  // O_EXCL, fsynced with its directory) and sets `created`.
  static SpoolKey load_or_create(const std::filesystem::path& file, bool& created);

  const Bytes& bytes() const { return key_; }
  const Id& id() const { return id_; }
  std::string id_hex() const;

 private:
  Bytes key_{};
  Id id_{};
};

std::string to_hex(const unsigned char* p, std::size_t n);

// What `--check-config` reports for spool.key_file: empty when the file is a usable key or does
// not exist yet (the agent creates it), otherwise the problem and its fix.
std::string spool_key_file_problem(const std::filesystem::path& file);

// spool.key_file when the config does not name one: beside the spool directory, "<dir>.key"
// (/var/lib/postwatch-agent/spool.key), so a copy of the spool directory does not hold it.
std::filesystem::path default_spool_key_file(const std::filesystem::path& spool_dir);

}  // namespace postwatch::agent
