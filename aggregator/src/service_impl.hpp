// AggregatorService's state and its parts, shared by the files that implement them:
// aggregator_service.cpp (wiring, start and stop), service_ingest.cpp (messages in, recovery,
// confirmations), service_tick.cpp (the board's tick and the live stream), service_alarms.cpp
// (alarms and silences), service_fleet.cpp (rollouts, catalogue adoption, commands) and
// service_cluster.cpp. Everything here runs on the io_context.
#pragma once

#include "postwatch/aggregator/aggregator_service.hpp"

#include "alerting/alarm_notifier.hpp"
#include "cluster/clustered_board.hpp"
#include "cluster/jetstream_cluster.hpp"
#include "cluster/shared_figures.hpp"
#include "cluster/shared_outbox.hpp"
#include "cluster/shared_trust.hpp"
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

struct AggregatorService::Impl {
  Impl(boost::asio::io_context& io, AggregatorOptions o, std::shared_ptr<const IndicatorCatalogue> c,
       std::shared_ptr<spdlog::logger> l, std::shared_ptr<const TargetCatalogue> t);

  void make_jetstream_cluster();

  bool owns(std::uint32_t post) const { return !jet || jet->owns(post); }
  json cluster_status() const;
  bool cluster_ready() const { return !jet || jet->ready(); }
  // Clustered (docs/security.md, "Clusters"): the shared key registry, and what this instance
  // shares with it.
  void make_shared_trust(const JetStreamClusterOptions& o);
  // An enrolment or rotation request: the holder of the post's partition has the shared
  // registry decide it, so the agent gets one answer.
  void enrol_clustered(const std::string& topic, const std::string& payload, std::int64_t now);

  static std::span<const std::uint8_t> as_bytes(const std::string& payload) {
    return {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()};
  }

  void dispatch(const std::string& topic, const std::string& payload, const Prechecked& pre);

  // An agent's answer to a remote command, on its own result topic (the broker's ACL lets only
  // that agent write there).
  void on_command_result(const std::string& post, const std::string& agent, const std::string& payload,
                         std::int64_t now);

  CommandDesk::Publish publish_retained();

  void replay_row(const StoredEventRow& r);

  // Rebuilds the state a previous run had: the same events through the same ingest.
  void recover();

  // The silence holding an open alarm's notifications now, or 0.
  std::uint64_t silenced_by(const Alarm& a, std::int64_t now) const;
  // What the API, the stream and the dashboard add to an open alarm: the silence holding it,
  // and whether its subject flaps (docs/alerting.md).
  void mark_alarm(const Alarm& a, json& j, std::int64_t now) const;
  void mark_alarm(json& alarm, std::int64_t now) const;

  // What routing needs of an alarm, and whether a silence holds it now.
  AlarmNotice notice_of(const Alarm& a, std::int64_t now) const;

  void on_alarm_changed(const Alarm& a);

  // Created or ended through the API: kept, logged, and the dashboards told.
  void on_silence_changed(const Silence& s);

  // A silence as it now stands: kept in the store and told to the dashboards; returned as the
  // API shows it.
  json keep_silence(const Silence& s, std::int64_t now);

  // Clustered: what other instances took or ended. Kept in our store too, so a restart
  // without NATS still knows it; the dashboards are told as for our own.
  void merge_shared_silences(std::int64_t now);

  // Silences that began or ended change who hears of the open alarms they match: the router
  // says what changed meanwhile once none holds an alarm (docs/alerting.md).
  void tick_silences(std::int64_t now);

  // The live stream: a status change goes out at once; other changes of a goal's or
  // pillar's snapshot (score, coverage, a pending status) at most every stream_update_ms.
  struct Sent {
    std::string body;
    std::int64_t at_ms = 0;
  };
  void stream_update(const char* type, json snapshot, Sent& sent, bool status_changed, std::int64_t now);

  // The goal feed over MQTT comes from one instance of a cluster.
  bool feed_publisher() const { return options.publish_snapshots && (!jet || jet->leader()); }

  void publish_alarm(const Alarm& a);

  // A rollout's catalogue, adopted before any agent gets it (docs/fleet.md, "A new indicator").
  // Throws RolloutError to refuse the rollout.
  void adopt_catalogue(const FleetBundle& b);

  // Steps the fleet rollouts on the agents' own reports (docs/fleet.md, "Rollouts").
  void tick_rollouts(std::int64_t now);

  void tick();

  // Clustered, one board (docs/scale-out.md): the leader debounces and raises alarms,
  // applying acknowledgements taken on any instance, and writes its image; the others show
  // the leader's latest image. Every instance then records and streams the changes alike.
  BoardChanges board_tick_clustered(const RollupSnapshot& snap, std::int64_t now);

  // Agents release their spool on these (DeliveryConfirmer): only what the store committed.
  void confirm_tick();
  // Between ticks: a watermark goes out as soon as the store committed what it covers, and so
  // does an enrolment's acceptance.
  void on_store_progress();
  void publish_reply(const AgentTrust::Reply& r);
  // A refusal at once; an acceptance once the store holds what it accepted.
  void send_enrol_reply(AgentTrust::Reply r);
  // Enrolment and rotation acceptances, in order, each once the store holds what it accepted.
  struct HeldReply {
    std::uint64_t after_unit = 0;
    AgentTrust::Reply reply;
  };
  std::deque<HeldReply> held_replies;
  void release_enrol_replies();

  // GET /api/v1/report (docs/strategy-progress.md, "The progress report"): made on the report
  // worker from the store file, read-only, as postwatch-report makes it, so reading months of
  // history never holds up ingest.
  void make_report(std::int64_t from, std::int64_t to, bool csv, const HttpReply& reply);

  // Runs `fn` every `interval_ms` on the io_context until the timer is cancelled.
  void repeat(boost::asio::steady_timer& timer, std::int64_t interval_ms, void (Impl::*fn)());

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
  // Before routes, whose figures point into them.
  MqttOutbox outbox;
  DeliveryConfirmer confirmer;
  ApiRoutes routes;
  HttpServer http;
  SignaturePrecheck precheck;  // before mqtt: Paho's thread reads it until mqtt stops
  MqttIngest mqtt;
  std::unique_ptr<JetStreamCluster> jet;            // --cluster-group (on NATS JetStream)
  std::unique_ptr<ClusteredBoard> clustered_board;  // with jet
  std::unique_ptr<SharedTrust> shared_trust;        // with jet
  bool jet_started = false;                         // once shared_trust->may_join()
  bool told_staying_out = false;
  ProgressFeed progress_feed;
  ReportWorker report_worker;
  SharedFigures shared_figures{*log};
  std::shared_ptr<SharedOutbox> shared_outbox;  // clustered, with --notifications
  std::unique_ptr<AlarmNotifier> notifier;      // --notifications
  boost::asio::steady_timer ticker, confirm_ticker, commit_ticker, restart_timer;
  std::function<void()> restart_on_catalogue;
  std::int64_t last_history_ms = 0;
  bool stopped = false;
  std::vector<Sent> goal_sent, pillar_sent;
};

}  // namespace postwatch::aggregator
