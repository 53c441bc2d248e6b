#include "trust/agent_trust.hpp"

#include "postwatch/topics.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace postwatch::aggregator {

AgentTrust::AgentTrust(AggregatorIdentity identity, bool require_signatures, Persist persist,
                       std::shared_ptr<spdlog::logger> log, std::int64_t rotation_grace_ms)
    : identity_(std::move(identity)),
      keys_(require_signatures),
      desk_(identity_.enrolment_secret, identity_.key, keys_),
      persist_(std::move(persist)),
      log_(std::move(log)),
      rotation_grace_ms_(rotation_grace_ms) {}

void AgentTrust::load(const std::vector<std::pair<std::string, std::string>>& records) {
  std::size_t bad = 0;
  for (const auto& [key, body] : records) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (key.starts_with("key/")) {
      AgentKey k;
      if (from_json(j, k))
        keys_.add(std::move(k));
      else
        ++bad;
    } else if (key.starts_with("token/")) {
      IssuedToken t;
      if (from_json(j, t))
        desk_.load(std::move(t));
      else
        ++bad;
    }
  }
  if (bad) log_->error("the store holds {} damaged agent key or token record(s); they were skipped", bad);
}

void AgentTrust::keep(const AgentKey& k) {
  if (persist_) persist_("key/" + k.post + "/" + k.agent + "/" + k.key_id, to_json(k).dump());
}
void AgentTrust::keep(const IssuedToken& t) {
  if (persist_) persist_("token/" + t.id, to_json(t).dump());
}

std::optional<AgentTrust::EnrolAsk> AgentTrust::read_enrol(std::string_view topic,
                                                           std::span<const std::uint8_t> payload,
                                                           const IndicatorCatalogue& catalogue, std::int64_t now_ms) {
  topics::AgentTopic t;
  EnrolAsk ask;
  EnrolRequest& r = ask.request;
  if (!topics::parse_agent_topic(topic, t) || t.channel != topics::Channel::Enrol ||
      decode_enrol_request(payload, r) != DecodeError::None) {
    ++counters_.enrolments_undecodable;
    log_->warn("ignored an enrolment request on '{}': not a readable EnrolRequest", topic);
    return std::nullopt;
  }
  ask.region = t.region;
  ask.post = t.post;
  ask.agent = t.agent;
  auto post = catalogue.post_index(t.post);
  if (r.post_id != t.post || r.agent_id != t.agent)
    ask.refusal = EnrolReply{
        r.agent_id, r.post_id, r.token_id, false, "the request names another post or agent than its topic", "", now_ms};
  else if (!post || catalogue.posts()[*post].region != t.region)
    ask.refusal = EnrolReply{r.agent_id, r.post_id, r.token_id, false, "unknown post or region", "", now_ms};
  return ask;
}

std::optional<AgentTrust::Reply> AgentTrust::on_enrol(std::string_view topic, std::span<const std::uint8_t> payload,
                                                      const IndicatorCatalogue& catalogue, std::int64_t now_ms) {
  auto ask = read_enrol(topic, payload, catalogue, now_ms);
  if (!ask) return std::nullopt;
  if (ask->refusal) return answer_enrol(*ask, *ask->refusal, false);
  auto out = desk_.redeem(ask->request, payload, now_ms, rotation_grace_ms_);
  if (out.changed) {
    if (out.retired) keep(*out.retired);  // both keys go into the store's next commit together
    keep(*out.key);
    if (out.token) keep(*out.token);
  }
  return answer_enrol(*ask, out.reply, out.changed);
}

AgentTrust::Reply AgentTrust::answer_enrol(const EnrolAsk& ask, const EnrolReply& reply, bool changed) {
  const EnrolRequest& r = ask.request;
  if (r.rotation()) {
    if (reply.accepted) {
      counters_.keys_rotated += changed ? 1 : 0;
      log_->info("agent {}/{} rotated its key from {} to {}; the old key stays valid for {} min", ask.post, ask.agent,
                 r.endorsed_by, reply.agent_key_id, rotation_grace_ms_ / 60'000);
    } else {
      ++counters_.enrolments_refused;
      log_->warn("refused the key rotation of agent {}/{}: {}", ask.post, ask.agent, reply.reason);
    }
  } else if (reply.accepted) {
    ++counters_.enrolments_accepted;
    log_->info("agent {}/{} enrolled with key {} (token {})", ask.post, ask.agent, reply.agent_key_id, r.token_id);
  } else {
    ++counters_.enrolments_refused;
    log_->warn("refused the enrolment of agent {}/{} (token '{}'): {}", ask.post, ask.agent, r.token_id, reply.reason);
  }
  return Reply{topics::agent_topic(ask.region, ask.post, ask.agent, topics::Channel::Enrolled),
               encode_enrol_reply(reply, identity_.key), reply.accepted};
}

void AgentTrust::merge_shared(const std::vector<AgentKey>& keys) {
  for (const auto& k : keys) {
    const AgentKey* before = keys_.find(k.post, k.agent, k.key_id);
    const bool was_valid_key = before && !before->revoked();
    if (!keys_.merge(k)) continue;
    const AgentKey* now = keys_.find(k.post, k.agent, k.key_id);
    keep(*now);
    if (!before)
      log_->info("agent {}/{}: key {} taken up from the cluster's registry ({})", k.post, k.agent, k.key_id,
                 now->revoked()    ? "revoked"
                 : now->in_force() ? "in force"
                                   : "rotated out");
    else if (was_valid_key && now->revoked())
      log_->warn("agent {}/{}: key {} revoked on another instance", k.post, k.agent, k.key_id);
    if (k.token_id.empty()) continue;
    if (const IssuedToken* known = desk_.find(k.token_id)) {
      IssuedToken used = *known;
      mark_used(used, {&k, 1});
      if (const IssuedToken* t = desk_.merge(used)) keep(*t);
    }
  }
}

void AgentTrust::merge_shared(const IssuedToken& token) {
  IssuedToken t = token;
  mark_used(t, keys_.keys_of_agent(t.post, t.agent));  // its use may have come first
  if (const IssuedToken* kept = desk_.merge(t)) keep(*kept);
}

std::optional<IssuedToken> AgentTrust::token(std::string_view id) const {
  const IssuedToken* t = desk_.find(id);
  return t ? std::optional<IssuedToken>(*t) : std::nullopt;
}

EnrolmentDesk::Issued AgentTrust::issue(const IndicatorCatalogue& catalogue, const std::string& post,
                                        const std::string& agent, std::int64_t ttl_ms, const std::string& by,
                                        std::int64_t now_ms) {
  if (!catalogue.post_index(post)) throw std::invalid_argument("unknown post '" + post + "'");
  auto issued = desk_.issue(post, agent, ttl_ms, now_ms);
  keep(*issued.token);
  if (share_.token) share_.token(*issued.token);
  ++counters_.tokens_issued;
  log_->info("enrolment token {} issued for {}/{} by {}, valid {} min", issued.token->id, post, agent,
             by.empty() ? "anonymous" : by, ttl_ms / 60'000);
  return issued;
}

const AgentKey* AgentTrust::revoke(const std::string& post, const std::string& agent, const std::string& by,
                                   std::int64_t now_ms) {
  const AgentKey* k = keys_.revoke(post, agent, now_ms);
  if (!k) return nullptr;
  for (const auto* each : keys_.all())  // the key in force and one still being rotated out
    if (each->post == post && each->agent == agent && each->revoked_at_ms == now_ms) keep(*each);
  if (share_.agent) share_.agent(keys_.keys_of_agent(post, agent));
  ++counters_.keys_revoked;
  log_->warn("key {} of agent {}/{} revoked by {}: its messages are refused until it enrols again", k->key_id, post,
             agent, by.empty() ? "anonymous" : by);
  return k;
}

const SigningKey& AgentTrust::prepare_next_key(const std::string& by) {
  const bool had = identity_.next.has_value();
  const auto& next = identity_.prepare_next();
  if (!had) {
    log_->info(
        "the aggregator's next key {} is prepared by {} ({}): every confirmation announces it from now on; "
        "switch to it once the agents report trusting it (docs/security.md)",
        next.key_id(), by.empty() ? "anonymous" : by, identity_.next_key_file().string());
    if (on_key_change_) on_key_change_();
  }
  return next;
}

AgentTrust::Switched AgentTrust::switch_key(const std::string& by, std::int64_t now_ms) {
  Switched out{identity_.key.key_id(), identity_.next ? identity_.next->key_id() : std::string(), 0};
  identity_.switch_to_next();
  ++counters_.aggregator_key_switches;
  for (const auto* t : desk_.tokens())
    if (t->used_at_ms == 0 && t->expires_at_ms > now_ms) ++out.unused_tokens;
  log_->warn(
      "the aggregator now signs with key {} (was {}), switched by {}; confirmations tell agents to stop "
      "trusting {}{}",
      out.to, out.from, by.empty() ? "anonymous" : by, out.from,
      out.unused_tokens
          ? "; " + std::to_string(out.unused_tokens) + " unused enrolment token(s) name the old key: issue them again"
          : std::string());
  if (on_key_change_) on_key_change_();
  return out;
}

nlohmann::json AgentTrust::key_json(const AgentKey& k, std::int64_t now_ms) {
  auto j = to_json(k);
  j["state"] = k.revoked() ? "revoked" : k.in_force() ? "in_force" : k.valid_at(now_ms) ? "retiring" : "retired";
  return j;
}

nlohmann::json AgentTrust::keys_json(std::int64_t now_ms) const {
  auto list = nlohmann::json::array();
  for (const auto* k : keys_.all()) list.push_back(key_json(*k, now_ms));
  auto tokens = nlohmann::json::array();
  for (const auto* t : desk_.tokens()) tokens.push_back(to_json(*t));
  auto aggregator = nlohmann::json{{"key_id", identity_.key.key_id()},
                                   {"public_key", to_hex(identity_.key.public_key())},
                                   {"next_key_id", identity_.next ? nlohmann::json(identity_.next->key_id()) : nullptr},
                                   {"retired_key_ids", identity_.retired_key_ids()}};
  return {{"aggregator_key", std::move(aggregator)},
          {"require_signatures", keys_.require_signatures()},
          {"keys", std::move(list)},
          {"tokens", std::move(tokens)}};
}

}  // namespace postwatch::aggregator
