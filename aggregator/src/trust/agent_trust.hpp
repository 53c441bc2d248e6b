// The aggregator's side of end-to-end trust (docs/security.md), one object the service, the
// ingest stages and the API share on the io_context: the aggregator's own identity, the
// agents' keys, the enrolment desk, and what they counted. Changes go to the store through
// `persist` (key -> JSON body; an empty body never happens: keys and tokens are kept as
// history, revoked or used).
#pragma once

#include "postwatch/catalogue.hpp"
#include "trust/agent_key_registry.hpp"
#include "trust/aggregator_identity.hpp"
#include "trust/enrolment_desk.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

struct TrustCounters {
  std::uint64_t enrolments_accepted = 0, enrolments_refused = 0, enrolments_undecodable = 0;
  std::uint64_t tokens_issued = 0, keys_revoked = 0, keys_rotated = 0;
  std::uint64_t aggregator_key_switches = 0;
};

class AgentTrust {
 public:
  using Persist = std::function<void(std::string key, std::string body)>;
  // A rotated-out agent key stays valid for `rotation_grace_ms` (--key-rotation-grace).
  AgentTrust(AggregatorIdentity identity, bool require_signatures, Persist persist, std::shared_ptr<spdlog::logger> log,
             std::int64_t rotation_grace_ms = kDefaultRotationGraceMs);
  static constexpr std::int64_t kDefaultRotationGraceMs = 24LL * 3600 * 1000;

  // Start-up: what the store kept ("key/<post>/<agent>/<key id>", "token/<id>").
  void load(const std::vector<std::pair<std::string, std::string>>& records);

  AgentTrust(const AgentTrust&) = delete;  // the desk holds references into it
  AgentTrust& operator=(const AgentTrust&) = delete;

  const AgentKeyRegistry& keys() const { return keys_; }
  // Key files this start made (first start), for the log.
  const std::vector<std::string>& created_files() const { return identity_.created; }
  const SigningKey& signer() const { return identity_.key; }

  struct Reply {
    std::string topic;
    std::vector<std::uint8_t> payload;
    // An acceptance: publish it only once the store committed what it accepted (an agent told
    // "accepted" by an aggregator that then crashed would sign with a key nobody knows).
    bool after_commit = false;
  };
  // An EnrolRequest on an agent's enrol topic: the signed answer to publish on its enrolled
  // topic, or nullopt when there is nobody to answer (not an agent topic, undecodable).
  std::optional<Reply> on_enrol(std::string_view topic, std::span<const std::uint8_t> payload,
                                const IndicatorCatalogue& catalogue, std::int64_t now_ms);

  // Clustered (docs/security.md, "Clusters"), the cluster's shared registry decides instead of
  // this instance's desk: read_enrol checks what the topic alone decides, answer_enrol signs
  // the decision, counts and logs it as on_enrol does.
  struct EnrolAsk {
    std::string region, post, agent;  // of the topic
    EnrolRequest request;
    std::optional<EnrolReply> refusal;  // refused on the topic alone: answer at once
  };
  // nullopt: not a readable EnrolRequest (counted and logged).
  std::optional<EnrolAsk> read_enrol(std::string_view topic, std::span<const std::uint8_t> payload,
                                     const IndicatorCatalogue& catalogue, std::int64_t now_ms);
  Reply answer_enrol(const EnrolAsk& ask, const EnrolReply& reply, bool changed);
  // What this instance shares with the others: each token it issues, and an agent's keys after
  // it revoked them.
  struct ShareHooks {
    std::function<void(const IssuedToken&)> token;
    std::function<void(std::vector<AgentKey>)> agent;
  };
  void share_with(ShareHooks hooks) { share_ = std::move(hooks); }
  // What the others shared, verified: kept (and persisted) where it adds anything.
  void merge_shared(const std::vector<AgentKey>& keys);
  void merge_shared(const IssuedToken& token);
  std::optional<IssuedToken> token(std::string_view id) const;
  const std::vector<std::uint8_t>& enrolment_secret() const { return identity_.enrolment_secret; }
  std::int64_t rotation_grace_ms() const { return rotation_grace_ms_; }

  // The API (operator role). `issue` refuses an unknown post (std::invalid_argument).
  EnrolmentDesk::Issued issue(const IndicatorCatalogue& catalogue, const std::string& post, const std::string& agent,
                              std::int64_t ttl_ms, const std::string& by, std::int64_t now_ms);
  const AgentKey* revoke(const std::string& post, const std::string& agent, const std::string& by, std::int64_t now_ms);

  // The aggregator's own key (docs/security.md, "The aggregator's key"), operator role: prepare
  // a next key, which every confirmation then announces; once the agents report trusting it,
  // switch to it (the key in force is retired, and confirmations say so). Both call
  // `on_key_change`. prepare throws std::runtime_error when the key cannot be written; switch
  // throws std::logic_error when none is prepared, std::runtime_error when a file cannot be
  // written (then nothing changed).
  const SigningKey& prepare_next_key(const std::string& by);
  struct Switched {
    std::string from, to;
    std::size_t unused_tokens = 0;  // still valid, issued under the old key: issue them again
  };
  Switched switch_key(const std::string& by, std::int64_t now_ms);
  const SigningKey* next_key() const { return identity_.next ? &*identity_.next : nullptr; }
  std::vector<std::string> retired_key_ids() const { return identity_.retired_key_ids(); }
  void on_key_change(std::function<void()> f) { on_key_change_ = std::move(f); }

  const TrustCounters& counters() const { return counters_; }
  // GET /api/v1/agent-keys: the aggregator's key, every agent key and every token (no secret).
  nlohmann::json keys_json(std::int64_t now_ms) const;
  // One key as the API shows it, with its state at `now_ms`: in_force, retiring, retired, revoked.
  static nlohmann::json key_json(const AgentKey& k, std::int64_t now_ms);

 private:
  void keep(const AgentKey& k);
  void keep(const IssuedToken& t);

  AggregatorIdentity identity_;
  AgentKeyRegistry keys_;
  EnrolmentDesk desk_;
  Persist persist_;
  std::shared_ptr<spdlog::logger> log_;
  std::int64_t rotation_grace_ms_;
  std::function<void()> on_key_change_;
  ShareHooks share_;
  TrustCounters counters_;
};

}  // namespace postwatch::aggregator
