// The trust registry of a cluster on NATS JetStream (docs/security.md, "Clusters";
// docs/scale-out.md): the bucket postwatch-<group>-trust holds one entry per agent (all its
// keys, agent.<post>.<agent>), one per enrolment token (token.<id>) and one per instance
// (signer.<instance>: the aggregator key it signs with). Every entry is sealed with the
// cluster's aggregator key (trust/shared_record.hpp), which the operator provisions to every
// instance and never to the broker; an entry that does not verify is refused, logged and
// counted, and changes nothing.
//
// The holder of a post's partition decides its agents' enrolments and rotations here: on the
// agent's entry as read, written back by revision (create-if-absent for the first key), so two
// instances never both put a key in force, and a token is used once across the cluster.
//
// Its own NATS connection and thread (every call may wait for a round trip); the watch runs on
// the watch's thread. Results come back on the io_context.
#pragma once

#include "cluster/jetstream_cluster.hpp"
#include "cluster/nats_link.hpp"
#include "trust/shared_record.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::aggregator {

class SharedTrust {
 public:
  // What the others shared, verified, on the io_context.
  struct Hooks {
    std::function<void(std::vector<AgentKey>)> agent;
    std::function<void(IssuedToken)> token;
  };
  SharedTrust(boost::asio::io_context& io, const JetStreamClusterOptions& options, SigningKey aggregator_key,
              std::vector<std::uint8_t> enrolment_secret, std::int64_t rotation_grace_ms, Hooks hooks,
              std::shared_ptr<spdlog::logger> log);
  ~SharedTrust();
  SharedTrust(const SharedTrust&) = delete;
  SharedTrust& operator=(const SharedTrust&) = delete;

  void start();
  // Removes this instance's signer entry, so the others stop comparing keys with it at once.
  void stop();

  // From the io_context. Shared in the background, retried until written.
  void share_token(const IssuedToken& token);
  void share_agent(std::vector<AgentKey> keys);  // merged with the entry: nothing is lost
  // An enrolment or rotation of the agent the request names, decided on its entry (with the
  // keys and the token this instance knows merged in); `done` runs on the io_context.
  void decide(EnrolRequest request, std::vector<std::uint8_t> payload, std::vector<AgentKey> local,
              std::optional<IssuedToken> token, std::int64_t now_ms, std::function<void(AgentDecision)> done);

  // On the io_context: whether this instance signs with the key of most live instances (a tie
  // is not agreeing: nobody can tell which key is the cluster's); what is wrong, "" if nothing.
  bool key_agrees() const;
  std::string problem() const;
  // The registry has been watched a moment (the others' entries are in), and this instance can
  // verify it: its key agrees, or it has refused no agent's entry (no agent enrolled yet, where
  // a key of its own harms nobody). An instance that would refuse every enrolled agent's batches
  // stays out of the group.
  bool may_join() const;
  bool settled() const;  // connected, and the watch has brought what the bucket held
  void tick();           // logs a change in which instances disagree
  nlohmann::json status_json() const;

  struct View;  // the io_context side

 private:
  void cycle();
  bool setup();
  void on_entry(const KvEntry& e);  // on the watch's thread
  void refuse(const std::string& key, const std::string& why);
  void put_signer();
  void flush();  // pending tokens and agents
  bool write_agent(const std::string& key, const std::vector<AgentKey>& keys);
  // An agent's entry as the bucket holds it now; nullopt (and `error`) when it cannot be read.
  struct StoredAgent {
    std::uint64_t revision = 0;  // 0: absent
    std::vector<AgentKey> keys;  // none unless its seal verifies (the watch refused it otherwise)
    bool valid = false;
  };
  std::optional<StoredAgent> read_agent(const std::string& key, std::string& error);
  // Sealed, by revision (created if `revision` is 0): the compare-and-set every change rests on.
  KvWrite write_agent_entry(const std::string& key, const std::vector<AgentKey>& keys, std::uint64_t revision);
  std::optional<IssuedToken> read_token(const std::string& id);
  AgentDecision decide_now(const EnrolRequest& r, std::span<const std::uint8_t> payload,
                           const std::vector<AgentKey>& local, std::optional<IssuedToken> token, std::int64_t now_ms);
  template <class Fn>
  void to_view(Fn&& fn);

  boost::asio::io_context& core_io_;
  JetStreamClusterOptions options_;
  SigningKey key_;
  std::vector<std::uint8_t> secret_;
  std::int64_t grace_ms_;
  Hooks hooks_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<View> view_;

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  boost::asio::steady_timer timer_;
  std::thread thread_;
  std::unique_ptr<NatsLink> link_;
  std::unique_ptr<KvBucket> bucket_;
  std::unique_ptr<KvBucket::Watch> watch_;
  std::map<std::string, std::vector<AgentKey>> pending_agents_;  // entry key -> keys to merge in
  std::map<std::string, IssuedToken> pending_tokens_;
  std::chrono::steady_clock::time_point signer_put_at_{};
  std::string last_problem_;
  std::atomic<std::uint64_t> refused_{0};
};

}  // namespace postwatch::aggregator
