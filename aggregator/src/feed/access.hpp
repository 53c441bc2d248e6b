// Who may use the API: bearer tokens from a file (--tokens-file), each with a role.
// Without a tokens file the API is open (loopback only; main() refuses otherwise).
// Tokens are never logged and never appear in error messages.
#pragma once

#include "feed/http_types.hpp"

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

enum class Role { Read, Operator };
std::string_view to_string(Role r);

struct Principal {
  std::string name;
  Role role = Role::Read;
};

// Thrown by AccessControl::load; what() names the file and the problem.
class AccessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AccessControl {
 public:
  static constexpr std::size_t kMinTokenLength = 16;

  AccessControl() = default;  // open: every request is allowed
  // Reads {"tokens":[{"token","role":"read"|"operator","name"}]}. Refuses a file that other
  // users can read or write, tokens shorter than kMinTokenLength, duplicates, unknown roles.
  static AccessControl load(const std::filesystem::path& file);
  static AccessControl parse(std::string_view json_text, const std::string& origin);

  bool open() const { return tokens_.empty(); }
  std::size_t size() const { return tokens_.size(); }
  // The holder of `token`, or null. Compares against every token in constant time per token.
  const Principal* find(std::string_view token) const;

 private:
  struct Entry {
    std::string token;
    Principal who;
  };
  std::vector<Entry> tokens_;
};

// The token of "Authorization: Bearer <token>", if the header is there and well-formed.
std::optional<std::string_view> bearer_token(const HttpRequest& req);

}  // namespace postwatch::aggregator
