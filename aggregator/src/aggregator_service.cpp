#include "postwatch/aggregator/aggregator_service.hpp"

#include "alerting/alarm_notifier.hpp"
#include "cluster/jetstream_cluster.hpp"
#include "cluster/shared_figures.hpp"
#include "cluster/shared_outbox.hpp"
#include "feed/access.hpp"
#include "feed/api_routes.hpp"
#include "feed/http_server.hpp"
#include "feed/live_stream.hpp"
#include "feed/metrics.hpp"
#include "feed/progress_feed.hpp"
#include "feed/report_worker.hpp"
#include "feed/snapshot_json.hpp"
#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "ingest/delivery_confirmer.hpp"
#include "ingest/mqtt_ingest.hpp"
#include "ingest/post_liveness.hpp"
#include "outbound/mqtt_outbox.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/fleet_command.hpp"
#include "postwatch/secret_file.hpp"
#include "postwatch/topics.hpp"
#include "report/progress_report.hpp"
#include "rollouts/catalogue_adoption.hpp"
#include "rollouts/command_desk.hpp"
#include "rollouts/rollout_desk.hpp"
#include "rollup/board_image.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/indicator_state.hpp"
#include "rollup/status_board.hpp"
#include "silences/silence_book.hpp"
#include "store/event_store.hpp"
#include "trust/agent_trust.hpp"
#include "trust/signature_precheck.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <deque>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

// Refused before anything opens (the store, the broker, the port).
AggregatorOptions checked(AggregatorOptions o) {
  if (auto why = options_problem(o); !why.empty()) throw std::invalid_argument(why);
  return o;
}

AccessControl load_access(const AggregatorOptions& o) {
  if (o.tokens_file.empty()) {
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(o.http_address, ec);
    if (ec || !addr.is_loopback())
      throw std::invalid_argument("refusing to serve the API without access control on " + o.http_address +
                                  ", which is not a loopback address: give --tokens-file (see docs/operations.md)");
    return {};
  }
  try {
    return AccessControl::load(o.tokens_file);
  } catch (const AccessError& e) {
    throw std::invalid_argument(e.what());
  }
}

std::vector<std::string> ingest_filters(const AggregatorOptions& o) {
  std::vector<std::string> f = {std::string(topics::state_filter), std::string(topics::heartbeat_filter)};
  // Clustered, events reach the instances through JetStream partitions (JetStreamCluster), and
  // enrolment is not taken yet (docs/security.md, "Limits").
  if (o.cluster_group.empty()) {
    f.insert(f.begin(), std::string(topics::events_filter));
    f.push_back(std::string(topics::enrol_filter));
    f.push_back(std::string(command_result_filter));  // remote commands (docs/fleet.md)
  }
  return f;
}

// What routing needs of an alarm: its goal's pillar, its posts and their regions.
AlarmNotice alarm_notice(const Alarm& a, const IndicatorCatalogue& cat) {
  AlarmNotice n;  // by name: a positional list would let a new member take a neighbour's value
  n.id = a.id;
  n.kind = std::string(to_string(a.kind));
  n.level = std::string(to_string(a.level));
  n.goal = a.goal;
  n.open = a.open();
  n.acknowledged = a.acked_at_ms != 0;
  n.alarm = alarm_json(a);
  if (const Goal* g = a.kind == AlarmKind::Goal ? cat.find_goal(a.goal) : nullptr) n.pillar = g->pillar;
  auto add_post = [&](const std::string& id) {
    const Post* p = cat.find_post(id);
    if (!p || std::find(n.posts.begin(), n.posts.end(), id) != n.posts.end()) return;
    n.posts.push_back(id);
    if (std::find(n.regions.begin(), n.regions.end(), p->region) == n.regions.end()) n.regions.push_back(p->region);
  };
  if (!a.post.empty()) add_post(a.post);
  for (const auto& c : a.causes) add_post(c.post);
  return n;
}

std::unique_ptr<AlarmNotifier> make_notifier(const AggregatorOptions& o, const IndicatorCatalogue& cat,
                                             const std::shared_ptr<spdlog::logger>& log,
                                             std::shared_ptr<OutboxMirror> mirror) {
  if (o.notifications_file.empty()) return nullptr;
  try {
    auto config = NotificationConfig::load(o.notifications_file, cat);
    log->info("notifications: {} channel(s), {} route(s) from {}", config.channels.size(), config.routes.size(),
              o.notifications_file.string());
    return std::make_unique<AlarmNotifier>(std::move(config), o.data_dir, log, std::move(mirror));
  } catch (const NotificationConfigError& e) {
    throw std::invalid_argument(e.what());
  }
}

}  // namespace

namespace {
AggregatorIdentity load_identity(const AggregatorOptions& o) {
  try {
    return AggregatorIdentity::load_or_create(o.keys_dir.empty() ? o.data_dir / "keys" : o.keys_dir);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(std::string("--keys-dir: ") + e.what());
  }
}

// --fleet-keys; a file that does not read stops the start (std::invalid_argument: exit 2).
std::vector<PublicKey> load_fleet_keys_of(const AggregatorOptions& o) {
  if (o.fleet_keys_file.empty()) return {};
  try {
    return load_fleet_keys(o.fleet_keys_file);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(std::string("--fleet-keys: ") + e.what());
  }
}

StoreOptions store_options(const AggregatorOptions& o) {
  StoreOptions s{o.data_dir / "postwatch.sqlite"};
  s.sync = o.store_fsync ? StoreSync::Full : StoreSync::Normal;
  s.event_retention_ms = o.event_retention_ms;
  s.max_bytes = o.store_max_bytes;
  return s;
}
}  // namespace

struct AggregatorService::Impl {
  Impl(boost::asio::io_context& io, AggregatorOptions o, std::shared_ptr<const IndicatorCatalogue> c,
       std::shared_ptr<spdlog::logger> l, std::shared_ptr<const TargetCatalogue> t)
      : io_context(io),
        options(checked(std::move(o))),
        catalogue(std::move(c)),
        targets(t ? std::move(t) : std::make_shared<const TargetCatalogue>()),
        log(std::move(l)),
        access(load_access(options)),
        store(store_options(options), *catalogue, log),
        trust(
            load_identity(options), options.require_signatures,
            [this](std::string key, std::string body) { store.save_trust_record(std::move(key), std::move(body)); },
            log, options.key_rotation_grace_ms),
        state(*catalogue),
        rollup(*catalogue, RollupPolicy{options.hysteresis_band, options.min_coverage}),
        board(*catalogue, BoardPolicy{options.min_duration_ms}),
        silences(*catalogue),
        rollouts(load_fleet_keys_of(options), options.data_dir / "rollouts.json", log),
        commands(options.data_dir / "commands.json", log),
        agents(*catalogue),
        ingest(*catalogue, agents, state, log,
               IngestPolicy{options.allowed_lateness_ms, IngestPolicy{}.max_clock_skew_ms,
                            ClockPolicy{options.clock_correct_beyond_ms}},
               &store),
        presence(*catalogue, agents, log, ClockPolicy{options.clock_correct_beyond_ms}),
        stream(
            std::make_shared<LiveStream>(log,
                                         LiveStreamOptions{options.stream_max_queue, options.stream_max_clients,
                                                           std::chrono::milliseconds(options.stream_idle_timeout_ms)},
                                         [this] {
                                           auto now = now_utc_ms();
                                           auto j = stream_snapshot_json(*catalogue, board, now);
                                           for (auto& a : j["alarms"]) mark_alarm(a, now);
                                           return dump_json(j);
                                         })),
        routes(FeedSources{
            BoardReads{*catalogue, state, board, agents, &store, &silent, &maintenance, targets.get(),
                       [this](const Alarm& a, json& j) { mark_alarm(a, j, now_utc_ms()); }},
            DeliveryFigures{ingest, presence, [this] { return mqtt.subscribed() && cluster_ready(); }, &latency,
                            stream.get(), [this] { return mqtt.flow(); },
                            options.confirm_interval_ms > 0 ? &confirmer.counters() : nullptr, &outbox.queue(),
                            [this] { return notifier ? notifier->figures() : NotificationFigures{}; }},
            OperatorDesks{[this](const Alarm& a) {
                            // An acknowledgement: in a cluster the leader applies it for every instance.
                            if (jet) jet->share_ack({a.id, a.acked_by, a.ack_comment, a.acked_at_ms});
                            on_alarm_changed(a);
                          },
                          &silences, [this](const Silence& s) { on_silence_changed(s); }, &trust, &rollouts,
                          options.cluster_group.empty() ? &commands : nullptr,
                          [this](const std::string& topic, const std::string& payload) {
                            outbox.publish(topic, payload, true, OutboundPriority::Snapshot);
                          }},
            FeedExtras{&access, [this] { return cluster_status(); },
                       [this](std::int64_t from, std::int64_t to, bool csv, const HttpReply& reply) {
                         make_report(from, to, csv, reply);
                       }}}),
        http(io, log,
             HttpCallbacks{[this](const HttpRequest& req) { return routes.handle(req); },
                           [this](const HttpRequest& req) { return routes.check_upgrade(req); }, stream,
                           [this](const HttpRequest& req, const HttpReply& reply) {
                             return routes.handle_deferred(req, reply);
                           }}),
        mqtt(
            io, options.broker_uri, options.client_id, ingest_filters(options), log,
            [this](const std::string& topic, const std::string& payload, const Prechecked& pre) {
              dispatch(topic, payload, pre);
            },
            IngestFlowControl{options.max_queued_messages,
                              [this] { return store.pending_events() >= options.max_store_backlog_events; }}),
        outbox(io,
               OutboxClient{[this](std::uint64_t id, const OutboundMessage& m) {
                              return mqtt.publish_tracked(id, m.topic, m.payload, m.retained);
                            },
                            [this] { return mqtt.connected(); },
                            [this](const OutboundMessage& m, std::chrono::milliseconds timeout) {
                              return mqtt.publish_and_wait(m.topic, m.payload, m.retained, timeout);
                            }},
               log, OutboxOptions{OutboundLimits{options.outbound_window}}),
        // A confirmation is retained (a reconnecting agent hears the latest at once) and only
        // its newest value waits; a resend request is a notice, sent before confirmations.
        confirmer(
            *catalogue, agents, ingest,
            [this](const std::string& topic, std::span<const std::uint8_t> payload, bool retained) {
              outbox.publish(topic, std::string(payload.begin(), payload.end()), retained,
                             retained ? OutboundPriority::Confirm : OutboundPriority::Urgent);
              return true;
            },
            [this](std::uint32_t post) { return owns(post); }),
        progress_feed(*catalogue, *targets, store,
                      [this](const std::string& topic, std::string body) {
                        outbox.publish(topic, std::move(body), true, OutboundPriority::Snapshot);
                      }),
        ticker(io),
        confirm_ticker(io),
        commit_ticker(io),
        restart_timer(io),
        goal_sent(catalogue->goals().size()),
        pillar_sent(catalogue->pillars().size()) {
    mqtt.set_login({options.broker_username, options.broker_password, options.broker_ca_file, options.broker_cert_file,
                    options.broker_key_file});
    trust.load(store.load_trust_records());
    // Batch signatures are verified on Paho's delivery thread, beside the io thread's work
    // (docs/aggregator.md); the io thread still decides whether the key is valid.
    precheck.refresh(trust.keys(), now_utc_ms(), 0);
    // Compressed batches are unpacked there too, once: the signature covers the plain batch.
    // The lock is for the moment a rebuilt Paho client's thread overlaps the old one's.
    struct PahoUnpacker {
      std::mutex mu;
      BatchUnpacker unpacker;
    };
    auto paho_unpacker = std::make_shared<PahoUnpacker>();
    paho_unpacker->unpacker.add_dictionary(ingest.dictionary());
    // Catalogues adopted from rollouts or run before one (docs/fleet.md): agents a rollout has
    // not reached yet compress with their dictionaries.
    for (const auto& older : AdoptedCatalogues(options.data_dir / "catalogues").kept()) {
      auto d = BatchDictionary::for_catalogue(*older);
      if (d->id() == ingest.dictionary()->id()) continue;
      ingest.add_dictionary(d);
      paho_unpacker->unpacker.add_dictionary(d);
    }
    rollouts.set_catalogue_gate([this](const FleetBundle& b) { adopt_catalogue(b); }, catalogue->version());
    mqtt.set_precheck([this, paho_unpacker](const std::string& topic, const std::string& payload) {
      Prechecked pre;
      if (!topic.ends_with("/events")) return pre;
      auto bytes = as_bytes(payload);
      if (is_packed_batch(bytes)) {
        auto plain = std::make_shared<std::vector<std::uint8_t>>();
        std::lock_guard lk(paho_unpacker->mu);
        if (paho_unpacker->unpacker.unpack(bytes, *plain) != DecodeError::None) return pre;
        pre.packed_bytes = payload.size();
        pre.unpacked = std::move(plain);
        bytes = *pre.unpacked;
      }
      pre.signed_by = precheck.verify(bytes);
      return pre;
    });
    for (const auto& f : trust.created_files()) log->info("made {} (keep it: docs/security.md, \"Key custody\")", f);
    // Verified before anything reads them; confirmations signed so a forged one cannot make
    // an enrolled agent delete its spool (docs/security.md).
    ingest.set_keys(&trust.keys());
    presence.set_keys(&trust.keys());
    confirmer.set_signer(&trust.signer());
    // The aggregator's key rotation rides on the confirmations (docs/security.md).
    auto announce_keys = [this] {
      const SigningKey* next = trust.next_key();
      confirmer.set_key_notice(next ? std::optional<PublicKey>(next->public_key()) : std::nullopt,
                               trust.retired_key_ids());
    };
    announce_keys();
    trust.on_key_change(announce_keys);
    if (!options.cluster_group.empty()) {
      make_jetstream_cluster();
      presence.warn_on_broker_confirm(true);
    }
    notifier = make_notifier(options, *catalogue, log, shared_outbox);
    if (!options.tls_cert_file.empty()) {
      try {
        http.use_tls(options.tls_cert_file, options.tls_key_file);
      } catch (const std::runtime_error& e) {
        throw std::invalid_argument(e.what());
      }
    }
  }

  void make_jetstream_cluster() {
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
    jet =
        std::make_unique<JetStreamCluster>(io_context, *catalogue, state, ingest, std::move(o), std::move(hooks), log);
  }

  bool owns(std::uint32_t post) const { return !jet || jet->owns(post); }
  json cluster_status() const {
    if (!jet) return json{{"clustered", false}};
    auto j = jet->status_json();
    std::size_t on_puback = 0;  // warned about at their birth; here so an operator can find them
    for (const auto& a : agents) on_puback += a.presence.births > 0 && !a.presence.awaits_confirmation;
    j["agents_releasing_on_puback"] = on_puback;
    return j;
  }
  bool cluster_ready() const { return !jet || jet->ready(); }

  static std::span<const std::uint8_t> as_bytes(const std::string& payload) {
    return {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()};
  }

  void dispatch(const std::string& topic, const std::string& payload, const Prechecked& pre) {
    auto now = now_utc_ms();
    precheck.refresh(trust.keys(), now);  // a key enrolled or revoked reaches Paho's thread
    if (topic.ends_with("/enrol")) {
      if (auto reply = trust.on_enrol(topic, as_bytes(payload), *catalogue, now)) {
        if (!reply->after_commit) {  // a refusal promises nothing stored: at once
          publish_reply(*reply);
        } else {
          held_replies.push_back({store.units_handed_over(), std::move(*reply)});
          release_enrol_replies();
        }
      }
      return;
    }
    if (std::string post, agent; parse_command_result_topic(topic, post, agent)) {
      on_command_result(post, agent, payload, now);
      return;
    }
    if (!topic.ends_with("/events")) {
      presence.on_message(topic, as_bytes(payload), now);
      return;
    }
    // Clustered, events come from JetStream (JetStreamCluster), not from this subscription.
    if (pre.unpacked) ingest.count_unpacked(pre.packed_bytes, pre.unpacked->size());
    ingest.on_message(topic, pre.unpacked ? std::span<const std::uint8_t>(*pre.unpacked) : as_bytes(payload), now,
                      !mqtt.may_be_backlog(now), pre.signed_by.get());
  }

  // An agent's answer to a remote command, on its own result topic (the broker's ACL lets only
  // that agent write there).
  void on_command_result(const std::string& post, const std::string& agent, const std::string& payload,
                         std::int64_t now) {
    std::string error;
    auto r = decode_fleet_command_result(payload, error);
    if (!r) {
      log->warn("command result from {}/{} refused: {}", post, agent, error);
      return;
    }
    if (!commands.on_result(post, agent, *r, now, publish_retained()))
      log->info("command result {} from {}/{} matches no pending command of it (answered already, or expired)", r->id,
                post, agent);
  }

  CommandDesk::Publish publish_retained() {
    return [this](const std::string& topic, const std::string& payload) {
      outbox.publish(topic, payload, true, OutboundPriority::Snapshot);
    };
  }

  void replay_row(const StoredEventRow& r) {
    ingest.replay(r.post, r.agent, replayed_event(r), r.received_at_ms, r.clock_correction_ms);
  }

  // Rebuilds the state a previous run had: the same events through the same ingest.
  void recover() {
    auto started = std::chrono::steady_clock::now();
    std::uint64_t n = store.replay([&](const StoredEventRow& r) { replay_row(r); });
    std::vector<ShownStatus> goals(catalogue->goals().size()), pillars(catalogue->pillars().size());
    for (const auto& h : store.latest_history()) {
      ShownStatus s{h.status, h.at_ms, h.status, 0, health_from_score(h.status, h.score), h.score};
      if (h.scope == StatusScope::Goal) {
        for (std::size_t i = 0; i < goals.size(); ++i)
          if (std::to_string(catalogue->goals()[i].id) == h.id) goals[i] = s;
      } else {
        for (std::size_t i = 0; i < pillars.size(); ++i)
          if (catalogue->pillars()[i].id == h.id) pillars[i] = s;
      }
    }
    board.restore(std::move(goals), std::move(pillars), store.load_alarms());
    std::vector<Silence> kept;
    for (const auto& body : store.load_silences())
      if (auto s = silence_from_json(json::parse(body, nullptr, false))) kept.push_back(std::move(*s));
    silences.restore(std::move(kept));
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    if (n > 0) log->info("store: replayed {} event(s) in {} ms; {} alarm(s) restored", n, ms, board.alarms().size());
  }

  // The silence holding an open alarm's notifications now, or 0.
  std::uint64_t silenced_by(const Alarm& a, std::int64_t now) const {
    std::uint64_t id = 0;
    if (a.open()) silences.silenced(alarm_notice(a, *catalogue), now, &id);
    return id;
  }
  // What the API, the stream and the dashboard add to an open alarm: the silence holding it,
  // and whether its subject flaps (docs/alerting.md).
  void mark_alarm(const Alarm& a, json& j, std::int64_t now) const {
    if (!a.open()) return;
    if (std::uint64_t id = silenced_by(a, now)) j["silenced_by"] = id;
    if (notifier && notifier->flapping(alarm_notice(a, *catalogue))) j["flapping"] = true;
  }
  void mark_alarm(json& alarm, std::int64_t now) const {
    if (const Alarm* a = board.find_alarm(alarm.value("id", std::uint64_t{0}))) mark_alarm(*a, alarm, now);
  }

  // What routing needs of an alarm, and whether a silence holds it now.
  AlarmNotice notice_of(const Alarm& a, std::int64_t now) const {
    auto n = alarm_notice(a, *catalogue);
    n.silenced = silences.silenced(n, now);
    return n;
  }

  void on_alarm_changed(const Alarm& a) {
    store.save_alarm(a);
    // Clustered, only the leader notifies (docs/alerting.md, "In a cluster").
    auto now = now_utc_ms();
    if (notifier) notifier->on_alarm(notice_of(a, now), now, !jet || jet->leader());
    publish_alarm(a);
    json j = alarm_json(a);
    mark_alarm(a, j, now);
    j["type"] = "alarm";
    stream->broadcast(dump_json(j));
  }

  // Created or ended through the API: kept, logged, and the dashboards told.
  void on_silence_changed(const Silence& s) {
    json j = keep_silence(s, now_utc_ms());
    if (jet) jet->share_silence(s.id, dump_json(j));  // every instance holds it (docs/scale-out.md)
    if (s.ended_at_ms != 0)
      log->info("silence {} ended by {} ({})", s.id, s.ended_by, s.comment);
    else
      log->info("{} {} set by {}: {} from {} to {} ({})", s.maintenance ? "maintenance window" : "silence", s.id,
                s.created_by, dump_json(j["match"]), iso_utc(s.starts_at_ms), iso_utc(s.ends_at_ms), s.comment);
  }

  // A silence as it now stands: kept in the store and told to the dashboards; returned as the
  // API shows it.
  json keep_silence(const Silence& s, std::int64_t now) {
    json j = silence_json(s, now);
    store.save_silence(s.id, dump_json(j));
    json told = j;
    told["type"] = "silence";
    stream->broadcast(dump_json(told));
    return j;
  }

  // Clustered: what other instances took or ended. Kept in our store too, so a restart
  // without NATS still knows it; the dashboards are told as for our own.
  void merge_shared_silences(std::int64_t now) {
    for (const auto& body : jet->take_silences()) {
      auto s = silence_from_json(json::parse(body, nullptr, false));
      if (!s) {
        log->warn("cluster: a shared silence does not read back; ignored: {}", body.substr(0, 200));
        continue;
      }
      if (!silences.merge(*s)) continue;
      const Silence& kept = *silences.find(s->id);
      keep_silence(kept, now);
      log->info("cluster: {} {} {} (shared by another instance)", kept.maintenance ? "maintenance window" : "silence",
                kept.id, kept.ended_at_ms != 0 ? "ended by " + kept.ended_by : "set by " + kept.created_by);
    }
  }

  // Silences that began or ended change who hears of the open alarms they match: the router
  // says what changed meanwhile once none holds an alarm (docs/alerting.md).
  void tick_silences(std::int64_t now) {
    if (jet) merge_shared_silences(now);
    auto t = silences.tick(now);
    for (auto id : t.dropped) store.save_silence(id, "");
    if (jet && jet->leader())
      for (auto id : t.dropped) jet->forget_silence(id);
    for (auto id : t.started) log->info("silence {} holds from now", id);
    for (auto id : t.ended) log->info("silence {} has ended", id);
    if (notifier && !(t.started.empty() && t.ended.empty()))
      for (const auto& a : board.alarms())
        if (a.open()) notifier->on_alarm(notice_of(a, now), now, !jet || jet->leader());
    maintenance = silences.maintenance(now);
    // A post in a maintenance window is not missing (its last values keep counting).
    for (std::size_t p = 0; p < silent.size() && p < maintenance.size(); ++p)
      if (maintenance[p] != 0) silent[p] = false;
  }

  // The live stream: a status change goes out at once; other changes of a goal's or
  // pillar's snapshot (score, coverage, a pending status) at most every stream_update_ms.
  struct Sent {
    std::string body;
    std::int64_t at_ms = 0;
  };
  void stream_update(const char* type, json snapshot, Sent& sent, bool status_changed, std::int64_t now) {
    if (!status_changed && stream->clients() == 0) return;
    std::string body = dump_json(snapshot);
    if (!status_changed && (body == sent.body || now - sent.at_ms < options.stream_update_ms)) return;
    sent = {std::move(body), now};
    snapshot["type"] = type;
    snapshot["change"] = status_changed ? "status" : "update";
    stream->broadcast(dump_json(snapshot));
  }

  // The goal feed over MQTT comes from one instance of a cluster.
  bool feed_publisher() const { return options.publish_snapshots && (!jet || jet->leader()); }

  void publish_alarm(const Alarm& a) {
    if (feed_publisher())
      outbox.publish(std::string(topics::prefix) + "/feed/alarms", dump_json(alarm_json(a)), false,
                     OutboundPriority::Urgent);
  }

  // A rollout's catalogue, adopted before any agent gets it (docs/fleet.md, "A new indicator").
  // Throws RolloutError to refuse the rollout.
  void adopt_catalogue(const FleetBundle& b) {
    std::optional<IndicatorCatalogue> next;
    try {
      next.emplace(IndicatorCatalogue::parse(b.catalogue, "bundle v" + std::to_string(b.version)));
    } catch (const CatalogueError& e) {
      throw RolloutError(400, std::string("the bundle's catalogue does not load: ") + e.what());
    }
    if (auto why = catalogue_change_problem(*catalogue, *next); !why.empty())
      throw RolloutError(409, "this aggregator cannot adopt the bundle's catalogue: " + why);
    if (next->version() <= catalogue->version()) return;  // nothing it does not know already
    if (jet)
      throw RolloutError(409, "catalogue_version " + std::to_string(next->version()) +
                                  " is newer than the cluster's: install it on every instance first "
                                  "(rollouts of new catalogues are not clustered yet, docs/fleet.md)");
    if (!restart_on_catalogue) throw RolloutError(503, "this aggregator cannot restart itself onto a new catalogue");
    std::string in_use_text;
    if (!options.catalogue_file.empty()) {
      std::ifstream in(options.catalogue_file, std::ios::binary);
      in_use_text.assign(std::istreambuf_iterator<char>(in), {});
    }
    try {
      AdoptedCatalogues(options.data_dir / "catalogues")
          .adopt(b.catalogue, next->version(), in_use_text, catalogue->version());
    } catch (const std::runtime_error& e) {
      throw RolloutError(500, std::string("the catalogue cannot be adopted: ") + e.what());
    }
    log->warn(
        "adopted catalogue_version {} ({} indicators) from fleet bundle v{}: restarting on it; the rollout's "
        "agents get the bundle once it runs",
        next->version(), next->indicators().size(), b.version);
    // After the API's answer left: the restart closes the HTTP server.
    restart_timer.expires_after(std::chrono::milliseconds(300));
    restart_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && restart_on_catalogue) restart_on_catalogue();
    });
  }

  // Steps the fleet rollouts on the agents' own reports (docs/fleet.md, "Rollouts").
  void tick_rollouts(std::int64_t now) {
    if (rollouts.count(RolloutPlan::Phase::Running) == 0) return;
    rollouts.tick(
        [this](const RolloutAgent& a) -> const FleetReport* {
          auto post = catalogue->post_index(a.post);
          const AgentRecord* r = post ? agents.find(*post, a.agent) : nullptr;
          return r && r->has_presence && r->presence.has_fleet ? &r->presence.fleet : nullptr;
        },
        [this](const std::string& topic, const std::string& payload) {
          outbox.publish(topic, payload, true, OutboundPriority::Snapshot);
        },
        now);
  }

  void tick() {
    auto now = now_utc_ms();
    if (jet) jet->tick(now);
    silent = silent_posts(*catalogue, agents, state, now, LivenessPolicy{options.missed_heartbeats});
    tick_silences(now);
    auto snap = rollup.compute(state, now, silent, board.last().cells);
    std::vector<StatusBoard::ClockOff> clock_off;
    for (const auto& a : agents)  // every instance hears every heartbeat
      if (a.clock.offset.correction_ms() != 0)
        clock_off.push_back({a.post, a.name, static_cast<double>(a.clock.offset.correction_ms()) / 1000.0});
    board.set_clock_offsets(std::move(clock_off));
    board.set_store_failing(!store.failure().empty(), store.pending_events());
    auto changes = jet ? board_tick_clustered(snap, now) : board.tick(snap, silent, now);
    bool periodic = now - last_history_ms >= options.history_interval_ms;
    for (std::size_t g = 0; g < board.goals().size(); ++g) {
      const auto& s = board.goals()[g];
      std::string id = std::to_string(catalogue->goals()[g].id);
      bool changed = std::any_of(changes.statuses.begin(), changes.statuses.end(),
                                 [&](const StatusChange& c) { return c.scope == StatusScope::Goal && c.id == id; });
      if (changed || periodic) store.record_history({now, StatusScope::Goal, id, s.shown, s.score});
      if (changed && feed_publisher())
        outbox.publish(topics::goal_feed(catalogue->goals()[g].id), dump_json(goal_snapshot_json(*catalogue, board, g)),
                       true, OutboundPriority::Snapshot);
      stream_update("goal", goal_snapshot_json(*catalogue, board, g), goal_sent[g], changed, now);
    }
    for (std::size_t p = 0; p < board.pillars().size(); ++p) {
      const auto& s = board.pillars()[p];
      const std::string& id = catalogue->pillars()[p].id;
      bool changed = std::any_of(changes.statuses.begin(), changes.statuses.end(),
                                 [&](const StatusChange& c) { return c.scope == StatusScope::Pillar && c.id == id; });
      if (changed || periodic) store.record_history({now, StatusScope::Pillar, id, s.shown, s.score});
      if (changed && feed_publisher())
        outbox.publish(topics::pillar_feed(id), dump_json(pillar_snapshot_json(*catalogue, board, p)), true,
                       OutboundPriority::Snapshot);
      stream_update("pillar", pillar_snapshot_json(*catalogue, board, p), pillar_sent[p], changed, now);
    }
    if (periodic) last_history_ms = now;
    if (jet) shared_figures.tick(*jet, store);  // every instance serves the same targets
    progress_feed.tick(now, feed_publisher());
    if (shared_outbox) shared_outbox->set_leading(jet->leader());
    if (notifier) notifier->tick(now, !jet || jet->leader());
    if (!jet) {  // one box: docs/fleet.md says rollouts and commands are not clustered yet
      tick_rollouts(now);
      commands.tick(now, publish_retained());
    }
    for (auto id : changes.alarms)
      if (const Alarm* a = board.find_alarm(id)) on_alarm_changed(*a);
    for (const auto& c : changes.statuses)
      log->info("{} {}: {} -> {} (score {:.1f})", to_string(c.scope), c.id, to_string(c.from), to_string(c.to),
                c.score);
  }

  // Clustered, one board (docs/scale-out.md): the leader debounces and raises alarms,
  // applying acknowledgements taken on any instance, and writes its image; the others show
  // the leader's latest image. Every instance then records and streams the changes alike.
  BoardChanges board_tick_clustered(const RollupSnapshot& snap, std::int64_t now) {
    if (!jet->leader()) {
      was_leader = false;
      board.observe(snap);
      jet->take_acks();  // the leader applies them
      jet->take_mismatches();
      auto image = jet->take_board();
      if (!image) return {};
      BoardImage b;
      if (auto err = decode_board_image(*image, *catalogue, b); !err.empty()) {
        log->error("cluster: the leader's board is unreadable ({}); showing the last one", err);
        return {};
      }
      return board.adopt(std::move(b.goals), std::move(b.pillars), std::move(b.alarms));
    }
    // A new leader starts from the last image (it showed it until now).
    if (auto image = jet->take_board(); image && !was_leader) {
      BoardImage b;
      if (decode_board_image(*image, *catalogue, b).empty())
        board.adopt(std::move(b.goals), std::move(b.pillars), std::move(b.alarms));
    }
    was_leader = true;
    for (const auto& m : jet->take_mismatches())
      for (std::size_t i = 0; i < m.at_ms.size(); ++i)
        board.record_topic_mismatch(m.post, m.claimed[std::min(i, m.claimed.size() - 1)], m.at_ms[i]);
    auto changes = board.tick(snap, silent, now);
    for (const auto& ack : jet->take_acks()) {
      const Alarm* a = board.find_alarm(ack.alarm);
      if (!a || a->acked_at_ms != 0) continue;
      if (board.acknowledge(ack.alarm, ack.by, ack.comment, ack.at_ms)) changes.alarms.push_back(ack.alarm);
    }
    if (!changes.empty() || now - board_published_ms >= 1000) {
      jet->publish_board(encode_board_image(board));
      board_published_ms = now;
    }
    return changes;
  }

  // Agents release their spool on these (DeliveryConfirmer): only what the store committed.
  void confirm_tick() {
    bool caught_up = mqtt.flow().queued_messages == 0;
    confirmer.tick({store.events_handed_over(), store.events_committed()}, caught_up, now_utc_ms());
  }
  // Between ticks: a watermark goes out as soon as the store committed what it covers, and so
  // does an enrolment's acceptance.
  void on_store_progress() {
    if (options.confirm_interval_ms > 0)
      confirmer.publish_committed({store.events_handed_over(), store.events_committed()}, now_utc_ms());
    release_enrol_replies();
  }
  void publish_reply(const AgentTrust::Reply& r) {
    outbox.publish(r.topic, std::string(r.payload.begin(), r.payload.end()), false, OutboundPriority::Urgent);
  }
  // Enrolment and rotation acceptances, in order, each once the store holds what it accepted.
  struct HeldReply {
    std::uint64_t after_unit = 0;
    AgentTrust::Reply reply;
  };
  std::deque<HeldReply> held_replies;
  void release_enrol_replies() {
    const auto committed = store.units_committed();
    while (!held_replies.empty() && held_replies.front().after_unit <= committed) {
      publish_reply(held_replies.front().reply);
      held_replies.pop_front();
    }
  }

  // GET /api/v1/report (docs/strategy-progress.md, "The progress report"): made on the report
  // worker from the store file, read-only, as postwatch-report makes it, so reading months of
  // history never holds up ingest.
  void make_report(std::int64_t from, std::int64_t to, bool csv, const HttpReply& reply) {
    auto job = [file = store.file(), cat = catalogue, tgt = targets, from, to, csv, reply] {
      try {
        auto report = make_progress_report(*cat, *tgt, load_report_data(file, *cat, from, to));
        const std::string period = iso_utc(from).substr(0, 10) + "-" + iso_utc(to).substr(0, 10);
        if (csv) return reply(csv_response("postwatch-report-" + period + ".csv", render_report_csv(report)));
        HttpResponse res{http::status::ok, 11};
        res.set(http::field::content_type, "text/html; charset=utf-8");
        res.set(http::field::cache_control, "no-store");
        res.body() = render_report_html(report);
        reply(std::move(res));
      } catch (const std::exception& e) {
        reply(error_response(http::status::internal_server_error, std::string("the report failed: ") + e.what()));
      }
    };
    if (!report_worker.submit(std::move(job)))
      reply(error_response(http::status::service_unavailable, "reports are being made; try again in a minute"));
  }

  // Runs `fn` every `interval_ms` on the io_context until the timer is cancelled.
  void repeat(boost::asio::steady_timer& timer, std::int64_t interval_ms, void (Impl::*fn)()) {
    timer.expires_after(std::chrono::milliseconds(interval_ms));
    timer.async_wait([this, &timer, interval_ms, fn](boost::system::error_code ec) {
      if (ec) return;
      (this->*fn)();
      repeat(timer, interval_ms, fn);
    });
  }

  boost::asio::io_context& io_context;
  AggregatorOptions options;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::shared_ptr<const TargetCatalogue> targets;  // never null (empty: no targets)
  std::shared_ptr<spdlog::logger> log;
  AccessControl access;
  EventStore store;
  AgentTrust trust;
  IndicatorState state;
  GoalRollup rollup;
  StatusBoard board;
  SilenceBook silences;
  RolloutDesk rollouts;
  CommandDesk commands;                    // remote commands (one box only, like rollouts)
  std::vector<std::uint64_t> maintenance;  // per post: the maintenance window covering it, or 0
  AgentTable agents;
  BatchIngest ingest;
  AgentPresence presence;
  std::vector<bool> silent;  // per post, as of the last tick
  LatencyHistogram latency;
  std::shared_ptr<LiveStream> stream;
  ApiRoutes routes;
  HttpServer http;
  SignaturePrecheck precheck;  // before mqtt: Paho's thread reads it until mqtt stops
  MqttIngest mqtt;
  std::unique_ptr<JetStreamCluster> jet;  // --cluster-group (on NATS JetStream)
  MqttOutbox outbox;
  DeliveryConfirmer confirmer;
  ProgressFeed progress_feed;
  ReportWorker report_worker;
  SharedFigures shared_figures{*log};
  std::shared_ptr<SharedOutbox> shared_outbox;  // clustered, with --notifications
  std::unique_ptr<AlarmNotifier> notifier;      // --notifications
  boost::asio::steady_timer ticker, confirm_ticker, commit_ticker, restart_timer;
  std::function<void()> restart_on_catalogue;
  std::int64_t last_history_ms = 0;
  bool was_leader = false;  // clustered: led at the last tick
  std::int64_t board_published_ms = 0;
  bool stopped = false;
  std::vector<Sent> goal_sent, pillar_sent;
};

AggregatorService::AggregatorService(boost::asio::io_context& io, AggregatorOptions options,
                                     std::shared_ptr<const IndicatorCatalogue> catalogue,
                                     std::shared_ptr<spdlog::logger> log,
                                     std::shared_ptr<const TargetCatalogue> targets)
    : impl_(std::make_unique<Impl>(io, std::move(options), std::move(catalogue), std::move(log), std::move(targets))) {}

AggregatorService::~AggregatorService() { stop(); }

void AggregatorService::start() {
  impl_->recover();
  if (impl_->notifier)
    for (const auto& a : impl_->board.alarms())
      if (a.open()) impl_->notifier->restored(impl_->notice_of(a, now_utc_ms()), now_utc_ms());
  // Only live messages feed the latency histogram (replayed events are old by nature).
  impl_->ingest.on_applied_latency = [impl = impl_.get()](std::int64_t ms) { impl->latency.observe_ms(ms); };
  impl_->ingest.on_topic_mismatch = [impl = impl_.get()](std::string_view topic_post, std::string_view,
                                                         std::string_view claimed_post,
                                                         std::string_view claimed_agent) {
    auto claimed = std::string(claimed_post) + "/" + std::string(claimed_agent);
    // Clustered, the leader's board raises the alarm for whichever instance saw the attempt.
    if (impl->jet && !impl->jet->leader())
      impl->jet->share_mismatch(std::string(topic_post), claimed, now_utc_ms());
    else
      impl->board.record_topic_mismatch(std::string(topic_post), claimed, now_utc_ms());
  };
  // A message its agent did not sign is someone else's on that post's topics: repeated, it
  // raises the same alarm as a batch naming another post (docs/security.md).
  auto forged = [impl = impl_.get()](SignatureVerdict verdict, std::string_view topic_post, std::string_view agent) {
    auto claimed = std::string(topic_post) + "/" + std::string(agent) + ": " + std::string(to_string(verdict));
    if (impl->jet && !impl->jet->leader())
      impl->jet->share_mismatch(std::string(topic_post), claimed, now_utc_ms());
    else
      impl->board.record_topic_mismatch(std::string(topic_post), claimed, now_utc_ms());
  };
  impl_->ingest.on_signature_refused = forged;
  impl_->presence.on_signature_refused = forged;
  impl_->store.start();
  impl_->tick();  // statuses are right before the first request
  impl_->http.listen(impl_->options.http_address, impl_->options.http_port);
  if (impl_->access.open())
    impl_->log->warn(
        "no --tokens-file: the API, the dashboard and the live stream are open to anyone who can "
        "connect to {}:{}",
        impl_->options.http_address, impl_->http.port());
  else
    impl_->log->info("access: {} token(s) from {}", impl_->access.size(), impl_->options.tokens_file.string());
  impl_->mqtt.set_on_published([impl = impl_.get()](std::uint64_t id, bool ok) { impl->outbox.on_published(id, ok); });
  impl_->mqtt.start();
  impl_->outbox.start();
  if (impl_->jet) impl_->jet->start();
  impl_->repeat(impl_->ticker, impl_->options.tick_ms, &Impl::tick);
  if (impl_->options.confirm_interval_ms > 0)
    impl_->repeat(impl_->confirm_ticker, impl_->options.confirm_interval_ms, &Impl::confirm_tick);
  impl_->repeat(
      impl_->commit_ticker,
      impl_->options.confirm_interval_ms > 0 ? std::min<std::int64_t>(impl_->options.confirm_interval_ms, 50) : 50,
      &Impl::on_store_progress);
}

void AggregatorService::stop() {
  impl_->ticker.cancel();
  impl_->confirm_ticker.cancel();
  impl_->commit_ticker.cancel();
  impl_->restart_timer.cancel();
  if (impl_->jet && !impl_->stopped) impl_->jet->stop(std::chrono::seconds(5));
  impl_->stopped = true;
  // Alarms first, then the last confirmations: agents release what the store holds.
  impl_->outbox.stop(std::chrono::seconds(2));
  impl_->mqtt.stop();
  impl_->http.close();
  impl_->stream->close_all();
  impl_->store.flush(std::chrono::seconds(5));
}

void AggregatorService::on_catalogue_adopted(std::function<void()> restart) {
  impl_->restart_on_catalogue = std::move(restart);
}

unsigned short AggregatorService::http_port() const { return impl_->http.port(); }
bool AggregatorService::tls() const { return impl_->http.tls(); }
std::size_t AggregatorService::stream_clients() const { return impl_->stream->clients(); }

}  // namespace postwatch::aggregator
