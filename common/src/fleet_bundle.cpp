#include "postwatch/fleet_bundle.hpp"

#include "postwatch/topics.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>

namespace postwatch {

namespace {

// The same JSON type as the rest of the agent: a second one (ordered_json) would add its own
// parser and serializer to a binary sized for boards. Members come out sorted; the signature
// covers the text as written, so nothing depends on their order.
using Json = nlohmann::json;

constexpr std::uint32_t kMinHealthDeadlineS = 10;
constexpr std::uint32_t kMaxHealthDeadlineS = 86400;
// Deeper JSON is refused before it is parsed: a catalogue nests 5 deep, and nothing here
// should recurse a million levels on what a stranger published.
constexpr std::size_t kMaxNesting = 64;

// `text` quoted for a one-line message: control characters as '?', at most `max` bytes.
std::string shown(std::string_view text, std::size_t max = 64) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c < 0x20 || c == 0x7f ? '?' : text[i]);
  }
  if (text.size() > max) out += "...";
  return out + "'";
}

// A JSON library's message without its "[json.exception...] " tag, on one line, bounded.
std::string json_error(const std::exception& e) {
  std::string_view what = e.what();
  if (!what.empty() && what.front() == '[') {
    auto end = what.find("] ");
    if (end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  auto q = shown(what, 160);
  return q.substr(1, q.size() - 2);
}

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

// Parses `text`, or says why not in `error` ("<what> is not JSON: ...").
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

// Ids end up as MQTT topic levels: no level separators, no wildcards, nothing invisible.
bool valid_id(std::string_view id) {
  if (id.empty()) return false;
  for (char ch : id) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '/' || c == '+' || c == '#' || c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// The first problem with `b` (naming the field), or empty: what sign_bundle refuses and what
// open_bundle refuses in a document after checking each field's type.
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

// `text` (a member of FleetBundle) as a JSON object; throws std::invalid_argument naming `what`.
Json object_member(const std::string& text, const char* what) {
  std::string error;
  auto j = parse_json(text, what, error);
  if (!j) throw std::invalid_argument("fleet bundle: " + error);
  if (!j->is_object()) throw std::invalid_argument(std::string("fleet bundle: ") + what + " must be a JSON object");
  return *j;
}

std::string signed_message(std::string_view document) {
  std::string m;
  m.reserve(kBundleFormat.size() + 1 + document.size());
  m.append(kBundleFormat).append("\n").append(document);
  return m;
}

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
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

// The document's fields into `b`; empty, or what is wrong (the field named).
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

}  // namespace

std::string_view to_string(BundleTarget::Scope scope) {
  switch (scope) {
    case BundleTarget::Scope::Fleet: return "fleet";
    case BundleTarget::Scope::Region: return "region";
    case BundleTarget::Scope::Post: return "post";
    case BundleTarget::Scope::Agent: return "agent";
  }
  return "fleet";
}

std::string_view to_string(BundleRefusal refusal) {
  switch (refusal) {
    case BundleRefusal::None: return "none";
    case BundleRefusal::Malformed: return "malformed";
    case BundleRefusal::Unsigned: return "unsigned";
    case BundleRefusal::UnknownKey: return "unknown_key";
    case BundleRefusal::BadSignature: return "bad_signature";
  }
  return "malformed";
}

bool BundleTarget::addresses(std::string_view agent_region, std::string_view agent_post,
                             std::string_view agent_id) const {
  switch (scope) {
    case Scope::Fleet: return true;
    case Scope::Region: return !region.empty() && region == agent_region;
    case Scope::Post: return !post.empty() && post == agent_post;
    case Scope::Agent: return !post.empty() && !agent.empty() && post == agent_post && agent == agent_id;
  }
  return false;
}

std::string BundleTarget::describe() const {
  switch (scope) {
    case Scope::Fleet: return "fleet";
    case Scope::Region: return "region " + region;
    case Scope::Post: return "post " + post;
    case Scope::Agent: return "agent " + post + "/" + agent;
  }
  return "fleet";
}

std::string bundle_document(const FleetBundle& b) {
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

std::string sign_bundle(const FleetBundle& bundle, const SigningKey& key) {
  if (auto why = bundle_problem(bundle); !why.empty()) throw std::invalid_argument("fleet bundle: " + why);
  const auto document = bundle_document(bundle);
  const auto signature = key.sign(bytes_of(signed_message(document)));
  Json envelope;
  envelope["format"] = std::string(kBundleFormat);
  envelope["document"] = document;
  envelope["key_id"] = key.key_id();
  envelope["signature"] = to_hex(signature);
  return envelope.dump(2);
}

OpenedBundle open_bundle(std::string_view signed_text, const std::vector<PublicKey>& keys) {
  OpenedBundle out;
  auto refuse = [&out](BundleRefusal refusal, std::string error) {
    out.refusal = refusal;
    out.error = std::move(error);
    out.bundle = FleetBundle{};
    return out;
  };
  if (signed_text.size() > kMaxBundleBytes)
    return refuse(BundleRefusal::Malformed, "bundle of " + std::to_string(signed_text.size()) +
                                                " bytes is over the limit of " + std::to_string(kMaxBundleBytes));
  std::string error;
  auto envelope = parse_json(signed_text, "envelope", error);
  if (!envelope) return refuse(BundleRefusal::Malformed, error);
  if (!envelope->is_object()) return refuse(BundleRefusal::Malformed, "envelope is not a JSON object");
  for (const auto& [key, value] : envelope->items())
    if (key != "format" && key != "document" && key != "key_id" && key != "signature")
      return refuse(BundleRefusal::Malformed, "envelope: unknown field " + shown(key));

  auto format = envelope->find("format");
  if (format == envelope->end())
    return refuse(BundleRefusal::Malformed, "envelope: no format (expected " + std::string(kBundleFormat) + ")");
  if (!format->is_string())
    return refuse(BundleRefusal::Malformed, "envelope: format must be the string " + std::string(kBundleFormat));
  if (const auto& f = format->get_ref<const std::string&>(); f != kBundleFormat)
    return refuse(BundleRefusal::Malformed, "envelope: format " + shown(f) + " is not " + std::string(kBundleFormat));
  auto document = envelope->find("document");
  if (document == envelope->end() || !document->is_string())
    return refuse(BundleRefusal::Malformed, "envelope: document must be a string");

  auto signature = envelope->find("signature");
  if (signature == envelope->end() || signature->is_null() ||
      (signature->is_string() && signature->get_ref<const std::string&>().empty()))
    return refuse(BundleRefusal::Unsigned, "the bundle has no signature");
  if (!signature->is_string()) return refuse(BundleRefusal::Malformed, "envelope: signature must be a string");
  auto key_id = envelope->find("key_id");
  if (key_id == envelope->end() || !key_id->is_string())
    return refuse(BundleRefusal::Malformed, "envelope: key_id must be a string");

  const auto& id = key_id->get_ref<const std::string&>();
  const PublicKey* key = nullptr;
  std::string held;
  for (const auto& k : keys) {
    const auto k_id = key_id_of(k);
    if (k_id == id) key = &k;
    held += (held.empty() ? "" : ", ") + k_id;
  }
  if (!key)
    return refuse(BundleRefusal::UnknownKey, "signed by key " + shown(id, 32) + ", not a fleet key held here (" +
                                                 (held.empty() ? std::string("none") : held) + ")");
  out.key_id = id;

  Signature sig{};
  if (!from_hex(signature->get_ref<const std::string&>(), sig))
    return refuse(BundleRefusal::BadSignature,
                  "the signature is not " + std::to_string(2 * kSignatureBytes) + " hex characters (key " + id + ")");
  const auto& document_text = document->get_ref<const std::string&>();
  if (!verify_signature(*key, bytes_of(signed_message(document_text)), sig))
    return refuse(BundleRefusal::BadSignature, "the signature does not match the document (key " + id + ")");

  auto doc = parse_json(document_text, "document", error);
  if (!doc) return refuse(BundleRefusal::Malformed, error);
  if (auto why = parse_document(*doc, out.bundle); !why.empty())
    return refuse(BundleRefusal::Malformed, "document: " + why);
  return out;
}

std::string_view to_string(FleetReport::Outcome outcome) {
  constexpr std::string_view kNames[] = {"none", "applied", "refused", "rolled_back", "on_trial"};
  const auto i = static_cast<std::size_t>(outcome);
  return i < std::size(kNames) ? kNames[i] : "none";
}

std::string bundle_topic(const BundleTarget& target) {
  std::string t(topics::prefix);
  t += "/fleet/bundle/";
  switch (target.scope) {
    case BundleTarget::Scope::Fleet: return t + "all";
    case BundleTarget::Scope::Region: return t + "region/" + target.region;
    case BundleTarget::Scope::Post: return t + "post/" + target.post;
    case BundleTarget::Scope::Agent: return t + "agent/" + target.post + "/" + target.agent;
  }
  return t + "all";
}

std::vector<std::string> bundle_topics_for(std::string_view region, std::string_view post, std::string_view agent) {
  using Scope = BundleTarget::Scope;
  const std::string r(region), p(post), a(agent);
  return {bundle_topic({Scope::Fleet, "", "", ""}), bundle_topic({Scope::Region, r, "", ""}),
          bundle_topic({Scope::Post, "", p, ""}), bundle_topic({Scope::Agent, "", p, a})};
}

std::vector<PublicKey> load_fleet_keys(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read the fleet keys " + file + ": " + std::strerror(errno));
  std::vector<PublicKey> keys;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::string_view text = line;
    text = text.substr(0, text.find('#'));
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) continue;
    text = text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
    auto key = public_key_from_hex(text);
    if (!key)
      throw std::runtime_error(file + ":" + std::to_string(n) +
                               ": not an Ed25519 public key (64 hex characters, as postwatch-fleet keygen writes)");
    keys.push_back(*key);
  }
  if (in.bad()) throw std::runtime_error("cannot read the fleet keys " + file);
  if (keys.empty()) throw std::runtime_error(file + ": no public key in it (hex, one a line)");
  return keys;
}

}  // namespace postwatch
