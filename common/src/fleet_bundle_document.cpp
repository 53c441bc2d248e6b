// A fleet bundle's document: the JSON text the signature covers, written (bundle_document)
// and read back field by field with its checks (parse_document, bundle_problem).
#include "fleet_bundle_json.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace postwatch {
namespace bundle_json {
namespace {

constexpr std::uint32_t kMinHealthDeadlineS = 10;
constexpr std::uint32_t kMaxHealthDeadlineS = 86400;
// Deeper JSON is refused before it is parsed: a catalogue nests 5 deep, and nothing here
// should recurse a million levels on what a stranger published.
constexpr std::size_t kMaxNesting = 64;

// How deep `text` nests arrays and objects (strings skipped), counting no further than `limit` + 1.
std::size_t nesting(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Ids end up as MQTT topic levels: no level separators, no wildcards, nothing invisible.
bool valid_id(std::string_view id) {
  if (id.empty()) return false;
  for (char ch : id) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '/' || c == '+' || c == '#' || c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// The document's target object into `t`; empty, or what is wrong.
std::string parse_target(const Json& j, BundleTarget& t) {
  if (!j.is_object()) return "target must be an object";
  auto scope = j.find("scope");
  if (scope == j.end()) return "target.scope is missing";
  if (!scope->is_string()) return "target.scope must be a string";
  const auto& s = scope->get_ref<const std::string&>();
  if (s == "fleet")
    t.scope = BundleTarget::Scope::Fleet;
  else if (s == "region")
    t.scope = BundleTarget::Scope::Region;
  else if (s == "post")
    t.scope = BundleTarget::Scope::Post;
  else if (s == "agent")
    t.scope = BundleTarget::Scope::Agent;
  else
    return "target.scope must be fleet, region, post or agent, not " + shown(s);
  for (const auto& [key, value] : j.items()) {
    if (key == "scope") continue;
    std::string* field = key == "region" ? &t.region : key == "post" ? &t.post : key == "agent" ? &t.agent : nullptr;
    if (!field) return "unknown target field " + shown(key);
    if (!value.is_string()) return "target." + key + " must be a string";
    *field = value.get<std::string>();
  }
  return {};
}

// `text` (a member of FleetBundle) as a JSON object; throws std::invalid_argument naming `what`.
Json object_member(const std::string& text, const char* what) {
  std::string error;
  auto j = parse_json(text, what, error);
  if (!j) throw std::invalid_argument("fleet bundle: " + error);
  if (!j->is_object()) throw std::invalid_argument(std::string("fleet bundle: ") + what + " must be a JSON object");
  return *j;
}

}  // namespace

std::string shown(std::string_view text, std::size_t max) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c < 0x20 || c == 0x7f ? '?' : text[i]);
  }
  if (text.size() > max) out += "...";
  return out + "'";
}

std::string json_error(const std::exception& e) {
  std::string_view what = e.what();
  if (!what.empty() && what.front() == '[') {
    auto end = what.find("] ");
    if (end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  auto q = shown(what, 160);
  return q.substr(1, q.size() - 2);
}

std::optional<Json> parse_json(std::string_view text, std::string_view what, std::string& error) {
  if (nesting(text, kMaxNesting) > kMaxNesting) {
    error = std::string(what) + " nests deeper than " + std::to_string(kMaxNesting) + " levels";
    return std::nullopt;
  }
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    error = std::string(what) + " is not JSON: " + json_error(e);
    return std::nullopt;
  }
}

std::string bundle_problem(const FleetBundle& b) {
  if (b.version == 0) return "version must be above 0";
  if (b.issued_at_ms < 0) return "issued_at_ms must not be negative";
  if (b.health_deadline_s < kMinHealthDeadlineS || b.health_deadline_s > kMaxHealthDeadlineS)
    return "health_deadline_s must be " + std::to_string(kMinHealthDeadlineS) + " to " +
           std::to_string(kMaxHealthDeadlineS) + ", not " + std::to_string(b.health_deadline_s);
  const auto& t = b.target;
  const bool wants_region = t.scope == BundleTarget::Scope::Region;
  const bool wants_post = t.scope == BundleTarget::Scope::Post || t.scope == BundleTarget::Scope::Agent;
  const bool wants_agent = t.scope == BundleTarget::Scope::Agent;
  const std::string scope(to_string(t.scope));
  struct Field {
    const char* name;
    const std::string& value;
    bool wanted;
  };
  for (const Field& f : {Field{"region", t.region, wants_region}, Field{"post", t.post, wants_post},
                         Field{"agent", t.agent, wants_agent}}) {
    if (f.wanted && f.value.empty()) return "target." + std::string(f.name) + " is missing (scope " + scope + ")";
    if (f.wanted && !valid_id(f.value))
      return "target." + std::string(f.name) + " " + shown(f.value) + " must not contain '/', '+', '#' or whitespace";
    if (!f.wanted && !f.value.empty())
      return "target." + std::string(f.name) + " is set but a " + scope + " target has none";
  }
  if (b.config.empty() && b.catalogue.empty()) return "neither config nor catalogue: the bundle would change nothing";
  return {};
}

std::string parse_document(const Json& j, FleetBundle& b) {
  if (!j.is_object()) return "not a JSON object";
  bool has_version = false, has_issued = false, has_target = false, has_deadline = false;
  for (const auto& [key, value] : j.items()) {
    if (key == "version") {
      if (!value.is_number_unsigned()) return "version must be a whole number above 0";
      b.version = value.get<std::uint64_t>();
      has_version = true;
    } else if (key == "issued_at_ms") {
      if (!value.is_number_integer() ||
          (value.is_number_unsigned() &&
           value.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())))
        return "issued_at_ms must be a whole number of milliseconds";
      b.issued_at_ms = value.get<std::int64_t>();
      has_issued = true;
    } else if (key == "target") {
      if (auto why = parse_target(value, b.target); !why.empty()) return why;
      has_target = true;
    } else if (key == "config" || key == "catalogue") {
      if (!value.is_object()) return key + " must be a JSON object";
      (key == "config" ? b.config : b.catalogue) = value.dump();
    } else if (key == "health_deadline_s") {
      if (!value.is_number_unsigned() || value.get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max())
        return "health_deadline_s must be a whole number of seconds, " + std::to_string(kMinHealthDeadlineS) + " to " +
               std::to_string(kMaxHealthDeadlineS);
      b.health_deadline_s = value.get<std::uint32_t>();
      has_deadline = true;
    } else if (key == "note") {
      if (!value.is_string()) return "note must be a string";
      b.note = value.get<std::string>();
    } else {
      return "unknown field " + shown(key);
    }
  }
  if (!has_version) return "version is missing";
  if (!has_issued) return "issued_at_ms is missing";
  if (!has_target) return "target is missing";
  if (!has_deadline) return "health_deadline_s is missing";
  return bundle_problem(b);
}

}  // namespace bundle_json

std::string bundle_document(const FleetBundle& b) {
  using namespace bundle_json;
  Json target = {{"scope", std::string(to_string(b.target.scope))}};
  switch (b.target.scope) {
    case BundleTarget::Scope::Fleet: break;
    case BundleTarget::Scope::Region: target["region"] = b.target.region; break;
    case BundleTarget::Scope::Post: target["post"] = b.target.post; break;
    case BundleTarget::Scope::Agent:
      target["post"] = b.target.post;
      target["agent"] = b.target.agent;
      break;
  }
  Json doc;
  doc["version"] = b.version;
  doc["issued_at_ms"] = b.issued_at_ms;
  doc["target"] = std::move(target);
  if (!b.config.empty()) doc["config"] = object_member(b.config, "config");
  if (!b.catalogue.empty()) doc["catalogue"] = object_member(b.catalogue, "catalogue");
  doc["health_deadline_s"] = b.health_deadline_s;
  if (!b.note.empty()) doc["note"] = b.note;
  try {
    return doc.dump();
  } catch (const Json::type_error& e) {  // a string that is not UTF-8
    throw std::invalid_argument("fleet bundle: " + json_error(e));
  }
}

}  // namespace postwatch
