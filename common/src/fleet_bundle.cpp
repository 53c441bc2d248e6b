#include "postwatch/fleet_bundle.hpp"

#include "fleet_bundle_json.hpp"

#include "postwatch/topics.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <stdexcept>

namespace postwatch {

using bundle_json::bundle_problem;
using bundle_json::Json;
using bundle_json::parse_document;
using bundle_json::parse_json;
using bundle_json::shown;

namespace {

std::string signed_message(std::string_view document) {
  std::string m;
  m.reserve(kBundleFormat.size() + 1 + document.size());
  m.append(kBundleFormat).append("\n").append(document);
  return m;
}

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
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
