#include "feed/access.hpp"

#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace postwatch::aggregator {
using nlohmann::json;

std::string_view to_string(Role r) { return r == Role::Operator ? "operator" : "read"; }

AccessControl AccessControl::load(const std::filesystem::path& file) {
  const std::string name = file.string();
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw AccessError("tokens file " + name + ": cannot read it (no such file?)");
  if (!S_ISREG(st.st_mode)) throw AccessError("tokens file " + name + ": not a regular file");
  if (st.st_mode & (S_IROTH | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw AccessError("tokens file " + name + " is accessible to other users (mode " + mode +
                      "); restrict it, e.g. chmod 600 " + name);
  }
  std::ifstream in(file);
  if (!in) throw AccessError("tokens file " + name + ": cannot open it");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), "tokens file " + name);
}

AccessControl AccessControl::parse(std::string_view text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  // nlohmann's parse error would quote the input; the input holds secrets, so say less.
  if (j.is_discarded()) throw AccessError(origin + ": not valid JSON");
  if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array())
    throw AccessError(origin +
                      R"(: expected {"tokens": [{"token": "...", "role": "read"|"operator", "name": "..."}]})");
  AccessControl ac;
  const auto& list = j["tokens"];
  if (list.empty()) throw AccessError(origin + ": the tokens list is empty");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& t = list[i];
    const std::string where = origin + ": tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) throw AccessError(where + ": not an object");
    for (const auto& [key, _] : t.items())
      if (key != "token" && key != "role" && key != "name")
        // NOLINTNEXTLINE(performance-inefficient-string-concatenation): an error path, once
        throw AccessError(where + ": unknown field '" + key + "'");
    if (!t.contains("token") || !t["token"].is_string()) throw AccessError(where + ": missing string field 'token'");
    if (!t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().empty())
      throw AccessError(where + ": missing non-empty string field 'name'");
    if (!t.contains("role") || !t["role"].is_string()) throw AccessError(where + ": missing string field 'role'");
    Entry e;
    e.token = t["token"].get<std::string>();
    e.who.name = t["name"].get<std::string>();
    const auto role = t["role"].get<std::string>();
    if (role == "read")
      e.who.role = Role::Read;
    else if (role == "operator")
      e.who.role = Role::Operator;
    else
      throw AccessError(where + " ('" + e.who.name + "'): role must be \"read\" or \"operator\"");
    if (e.who.name.size() > 128) throw AccessError(where + ": name is longer than 128 bytes");
    if (e.token.size() < kMinTokenLength)
      throw AccessError(where + " ('" + e.who.name + "'): token is shorter than " + std::to_string(kMinTokenLength) +
                        " characters");
    for (unsigned char c : e.token)
      if (c <= 0x20 || c >= 0x7f)
        throw AccessError(where + " ('" + e.who.name + "'): token must be printable ASCII without spaces");
    for (std::size_t k = 0; k < ac.tokens_.size(); ++k)
      if (ac.tokens_[k].token == e.token)
        throw AccessError(where + " ('" + e.who.name + "'): same token as tokens[" + std::to_string(k) + "]");
    ac.tokens_.push_back(std::move(e));
  }
  return ac;
}

const Principal* AccessControl::find(std::string_view token) const {
  const Principal* found = nullptr;
  for (const auto& e : tokens_) {
    // No early exit on the first differing byte: the time does not tell how much matched.
    unsigned diff = e.token.size() != token.size();
    for (std::size_t i = 0; i < e.token.size(); ++i)
      diff |= static_cast<unsigned char>(e.token[i]) ^ static_cast<unsigned char>(i < token.size() ? token[i] : 0);
    if (diff == 0) found = &e.who;
  }
  return found;
}

std::optional<std::string_view> bearer_token(const HttpRequest& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return std::nullopt;
  std::string_view v(it->value().data(), it->value().size());
  constexpr std::string_view scheme = "bearer ";
  if (v.size() <= scheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(v[i])) != scheme[i]) return std::nullopt;
  v.remove_prefix(scheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  return v;
}

}  // namespace postwatch::aggregator
