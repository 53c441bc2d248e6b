// The service on a cluster (docs/scale-out.md): the JetStream cluster it joins, its status,
// and the one board the leader keeps for every instance.
#include "service_impl.hpp"

#include <set>

namespace postwatch::aggregator {

void AggregatorService::Impl::make_jetstream_cluster() {
  const auto& g = options.cluster_group;  // its name and the NATS settings: options_problem()
  std::string instance = options.instance_id.empty() ? options.client_id : options.instance_id;
  JetStreamClusterOptions o;
  o.group = g;
  o.instance = instance;
  silences.use_cluster_ids(instance);
  for (std::size_t at = 0; at <= options.nats_servers.size();) {
    auto comma = std::min(options.nats_servers.find(',', at), options.nats_servers.size());
    if (comma > at) o.servers.push_back(options.nats_servers.substr(at, comma - at));
    at = comma + 1;
  }
  o.user = options.nats_user;
  if (!options.nats_password_file.empty()) {
    try {
      o.password = read_secret_file(options.nats_password_file);
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(std::string("--nats-password-file: ") + e.what());
    }
  }
  o.partitions = options.nats_partitions;
  o.replicas = options.nats_replicas;
  o.lease_ms = options.lease_ms;
  o.snapshot_interval_ms = options.snapshot_interval_ms;
  JetStreamClusterHooks hooks;
  hooks.apply = [this](const std::string& topic, std::string_view payload, std::int64_t received_ms) {
    ingest.on_message(topic, {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()}, received_ms,
                      true);
  };
  hooks.handed_over = [this] { return store.events_handed_over(); };
  hooks.flush = [this](std::chrono::milliseconds timeout) { return store.flush(timeout); };
  // A dead leader's undelivered notifications go out from its successor (docs/alerting.md).
  if (!options.notifications_file.empty()) shared_outbox = std::make_shared<SharedOutbox>(o, log);
  make_shared_trust(o);
  jet = std::make_unique<JetStreamCluster>(io_context, *catalogue, state, ingest, std::move(o), std::move(hooks), log);
  clustered_board = std::make_unique<ClusteredBoard>(*catalogue, log);
}

void AggregatorService::Impl::make_shared_trust(const JetStreamClusterOptions& o) {
  shared_trust = std::make_unique<SharedTrust>(
      io_context, o, trust.signer(), trust.enrolment_secret(), trust.rotation_grace_ms(),
      SharedTrust::Hooks{[this](const std::vector<AgentKey>& keys) { trust.merge_shared(keys); },
                         [this](const IssuedToken& t) { trust.merge_shared(t); }},
      log);
  trust.share_with({[this](const IssuedToken& t) { shared_trust->share_token(t); },
                    [this](std::vector<AgentKey> keys) { shared_trust->share_agent(std::move(keys)); }});
  // What this instance's store holds (enrolled before it joined, or while the cluster was out
  // of reach) goes to the others too; merged, it changes nothing they know.
  std::set<std::pair<std::string, std::string>> agents_kept;
  for (const auto* k : trust.keys().all())
    if (agents_kept.emplace(k->post, k->agent).second)
      shared_trust->share_agent(trust.keys().keys_of_agent(k->post, k->agent));
}

void AggregatorService::Impl::enrol_clustered(const std::string& topic, const std::string& payload, std::int64_t now) {
  // Every instance hears every request. The holder of the post's partition answers (the leader
  // for a post nobody holds because it does not exist), so the agent gets one answer.
  topics::AgentTopic t;
  if (!topics::parse_agent_topic(topic, t)) return;
  auto post = catalogue->post_index(t.post);
  if (post ? !owns(*post) : !jet->leader()) return;
  auto ask = trust.read_enrol(topic, as_bytes(payload), *catalogue, now);
  if (!ask) return;
  if (ask->refusal) return send_enrol_reply(trust.answer_enrol(*ask, *ask->refusal, false));
  EnrolRequest r = ask->request;  // a copy: the answer below takes `ask` along
  auto keys = trust.keys().keys_of_agent(r.post_id, r.agent_id);
  auto token = r.rotation() ? std::nullopt : trust.token(r.token_id);
  shared_trust->decide(std::move(r), {payload.begin(), payload.end()}, std::move(keys), std::move(token), now,
                       [this, ask = std::move(*ask)](const AgentDecision& d) {
                         trust.merge_shared(d.keys);  // kept in the store before an acceptance goes out
                         send_enrol_reply(trust.answer_enrol(ask, d.reply, d.changed));
                       });
}

json AggregatorService::Impl::cluster_status() const {
  if (!jet) return json{{"clustered", false}};
  auto j = jet->status_json();
  j["trust"] = shared_trust->status_json();
  // An instance signing with another key than the others' says so where an operator looks first.
  if (j["problem"].get<std::string>().empty()) j["problem"] = shared_trust->problem();
  std::size_t on_puback = 0;  // warned about at their birth; here so an operator can find them
  for (const auto& a : agents) on_puback += a.presence.births > 0 && !a.presence.awaits_confirmation;
  j["agents_releasing_on_puback"] = on_puback;
  return j;
}

BoardChanges AggregatorService::Impl::board_tick_clustered(const RollupSnapshot& snap, std::int64_t now) {
  bool leader = jet->leader();
  auto out = clustered_board->tick(board, snap, silent,
                                   {leader, jet->take_acks(), jet->take_mismatches(), jet->take_board()}, now);
  if (out.image) jet->publish_board(std::move(*out.image));
  return out.changes;
}

}  // namespace postwatch::aggregator
