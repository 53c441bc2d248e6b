// What ingest, presence, the store, the live stream, MQTT flow control and delivery
// confirmation count: their rows of the figure table (feed/figures.hpp).
#include "feed/figures.hpp"

#include "feed/live_stream.hpp"
#include "postwatch/wire_codec.hpp"
#include "store/event_store.hpp"

namespace postwatch::aggregator {

namespace {
using L = MetricsText;
constexpr auto kCounter = MetricKind::Counter;
constexpr auto kGauge = MetricKind::Gauge;
}  // namespace

void add_ingest_figures(FigureRegistry& r, const BatchIngest& ingest, const AgentPresence& presence,
                        const AgentTable& agents) {
  auto counter = [&ingest](std::uint64_t IngestCounters::*field) {
    return [&ingest, field] { return FigureValue(ingest.counters().*field); };
  };
  r.family("postwatch_batches_accepted_total", kCounter, "Event batches accepted (decoded, topic and post checked).")
      .figure("batches_accepted", "", counter(&IngestCounters::batches_accepted));
  auto rejected =
      r.family("postwatch_batches_rejected_total", kCounter,
               "Event batches refused as a whole, by reason (decode errors, bad_topic, topic_mismatch, unknown_post).");
  for (std::size_t i = 1; i < decode_error_count; ++i) {
    const auto reason = std::string(to_string(static_cast<DecodeError>(i)));
    rejected.figure("batches_undecodable/" + reason, L::label("reason", reason),
                    [&ingest, i] { return FigureValue(ingest.counters().batches_undecodable[i]); });
  }
  rejected.figure("batches_bad_topic", L::label("reason", "bad_topic"), counter(&IngestCounters::batches_bad_topic))
      .figure("batches_topic_mismatch", L::label("reason", "topic_mismatch"),
              counter(&IngestCounters::batches_topic_mismatch))
      .figure("batches_unknown_post", L::label("reason", "unknown_post"),
              counter(&IngestCounters::batches_unknown_post));
  r.stats_only("batches_rejected", [&ingest] { return FigureValue(ingest.counters().batches_rejected()); });
  r.family("postwatch_batches_compressed_total", kCounter, "Compressed event batches (PackedBatch) unpacked.")
      .figure("batches_compressed", "", counter(&IngestCounters::batches_compressed));
  r.family("postwatch_compressed_bytes_total", kCounter,
           "Bytes of the compressed batches: as received (form=wire) and unpacked (form=plain).")
      .figure("compressed_bytes_received", L::label("form", "wire"),
              counter(&IngestCounters::compressed_bytes_received))
      .figure("compressed_bytes_unpacked", L::label("form", "plain"),
              counter(&IngestCounters::compressed_bytes_unpacked));
  r.family("postwatch_batches_clock_skew_total", kCounter,
           "Accepted batches whose sent_at differed from the aggregator's clock by more than the allowed skew.")
      .figure("batches_clock_skew", "", counter(&IngestCounters::batches_clock_skew));

  r.family("postwatch_events_accepted_total", kCounter, "Events accepted (new, known indicator, valid value).")
      .figure("events_accepted", "", counter(&IngestCounters::events_accepted));
  r.family("postwatch_events_rejected_total", kCounter,
           "Single events refused (stored with the reason, not applied), by reason.")
      .figure("events_unknown_indicator", L::label("reason", "unknown_indicator"),
              counter(&IngestCounters::events_unknown_indicator))
      .figure("events_bad_value", L::label("reason", "bad_value"), counter(&IngestCounters::events_bad_value))
      .figure("events_future", L::label("reason", "future"), counter(&IngestCounters::events_future));
  r.family("postwatch_events_duplicate_total", kCounter, "Events dropped as already seen (post, agent, seq).")
      .figure("events_duplicate", "", counter(&IngestCounters::events_duplicate));
  r.family("postwatch_events_late_total", kCounter,
           "Events observed before now minus the allowed lateness: stored, shown only where newest.")
      .figure("events_late", "", counter(&IngestCounters::events_late));
  r.family("postwatch_events_time_corrected_total", kCounter,
           "Events whose observed_at was corrected by their agent's measured clock offset.")
      .figure("events_time_corrected", "", counter(&IngestCounters::events_time_corrected));
  r.family("postwatch_agents_clock_corrected", kGauge,
           "Agents whose clock is off by more than --clock-correct-beyond-s, so their times are corrected.")
      .sample("", [&agents] {
        std::uint64_t corrected = 0;
        for (const auto& a : agents) corrected += a.clock.offset.correction_ms() != 0 ? 1 : 0;
        return FigureValue(corrected);
      });
  r.family("postwatch_events_gaps_total", kCounter, "Sequence numbers given up on as never received.")
      .figure("events_gaps", "", counter(&IngestCounters::events_gaps));
  r.family("postwatch_events_reordered_total", kCounter, "New events that arrived below their agent's highest seq.")
      .figure("events_reordered", "", counter(&IngestCounters::events_reordered));
  r.family("postwatch_events_urgent_total", kCounter,
           "Events applied from batches on the agents' urgent lane (sent ahead of their backlog).")
      .figure("events_urgent", "", counter(&IngestCounters::events_urgent));
  r.family("postwatch_agent_states_rejected_total", kCounter, "Birth, death or heartbeat messages refused.")
      .figure("agent_states_rejected", "", [&presence] { return FigureValue(presence.rejected()); });
  r.stats_only("agents_tracked", [&ingest] { return FigureValue(ingest.agents_tracked()); });
}

void add_store_figures(FigureRegistry& r, const EventStore& store) {
  r.family("postwatch_store_pending_events", kGauge, "Events handed to the store and not yet committed.")
      .figure("store_pending_events", "", [&store] { return FigureValue(store.pending_events()); });
  r.family("postwatch_store_committed_events_total", kCounter, "Events committed to SQLite since start.")
      .figure("events_persisted", "", [&store] { return FigureValue(store.events_committed()); });
  r.family("postwatch_store_write_errors_total", kCounter, "Failed store commits.")
      .figure("store_write_errors", "", [&store] { return FigureValue(store.write_errors()); });
  r.family("postwatch_store_used_bytes", kGauge, "Bytes of the store's database in use (checked every minute).")
      .figure("store_used_bytes", "", [&store] { return FigureValue(store.used_bytes()); });
  r.family("postwatch_store_pruned_events_total", kCounter, "Events retention removed since start.")
      .figure("store_events_pruned", "", [&store] { return FigureValue(store.events_pruned()); });
  r.family("postwatch_store_damaged_records_total", kCounter,
           "Stored records found damaged (checksum) at start-up and skipped; their events are lost.")
      .figure("store_damaged_records", "", [&store] { return FigureValue(store.corrupt_batches()); });
}

void add_presence_figures(FigureRegistry& r, const AgentPresence& presence, std::function<std::uint64_t()> posts_silent,
                          std::function<bool()> ready) {
  r.family("postwatch_agents_online", kGauge, "Agents whose last state message was a birth.")
      .figure("agents_online", "", [&presence] { return FigureValue(presence.online_count()); });
  r.family("postwatch_agents_known", kGauge, "Agents that announced themselves since the aggregator started.")
      .sample("", [&presence] { return FigureValue(presence.known_count()); });
  // O(posts): it runs on the io thread, between events. Per-agent counters are in
  // /api/v1/agents and /api/v1/agents/{post}/{agent}.
  r.family("postwatch_posts_silent", kGauge, "Posts that reported before and have gone quiet.")
      .figure("posts_silent", "", [posts_silent = std::move(posts_silent)] { return FigureValue(posts_silent()); });
  r.family("postwatch_mqtt_subscribed", kGauge, "1 when connected to the broker and subscribed.")
      .sample("", [ready = std::move(ready)] { return FigureValue(std::uint64_t{ready && ready() ? 1u : 0u}); });
}

void add_stream_figures(FigureRegistry& r, const LiveStream* stream) {
  if (!stream) {
    r.stats_only("stream_clients", [] { return FigureValue(std::uint64_t{0}); });
    return;
  }
  r.family("postwatch_ws_clients", kGauge, "Connected live-stream (WebSocket) clients.")
      .figure("stream_clients", "", [stream] { return FigureValue(stream->clients()); });
  r.family("postwatch_ws_connections_total", kCounter, "Live-stream clients connected since start.")
      .sample("", [stream] { return FigureValue(stream->stats().connected_total); });
  r.family("postwatch_ws_clients_dropped_total", kCounter, "Live-stream clients dropped for falling behind.")
      .sample("", [stream] { return FigureValue(stream->stats().dropped_slow_total); });
  r.family("postwatch_ws_messages_total", kCounter, "Messages broadcast on the live stream.").sample("", [stream] {
    return FigureValue(stream->stats().messages_total);
  });
}

void add_flow_figures(FigureRegistry& r, std::function<IngestFlowStats()> flow) {
  auto field = [flow = std::move(flow)]<typename T>(T IngestFlowStats::*f) {
    return [flow, f] { return FigureValue(flow().*f); };
  };
  r.family("postwatch_ingest_queued_messages", kGauge, "MQTT messages handed to the io thread, not yet handled.")
      .figure("ingest_queued_messages", "", field(&IngestFlowStats::queued_messages));
  r.family("postwatch_ingest_backpressure_pauses_total", kCounter,
           "Times MQTT delivery paused because the io thread or the store was behind.")
      .figure("ingest_pauses", "", field(&IngestFlowStats::pauses));
  r.family("postwatch_ingest_backpressure_seconds_total", kCounter, "Time MQTT delivery spent paused.")
      .figure("ingest_paused_ms", "", field(&IngestFlowStats::paused_ms), 1000);
  r.family("postwatch_ingest_backpressure_overrides_total", kCounter,
           "Pauses that reached the limit and let messages through anyway (memory grows instead).")
      .figure("ingest_pause_overrides", "", field(&IngestFlowStats::overrides));
}

void add_confirm_figures(FigureRegistry& r, const ConfirmCounters& c) {
  auto field = [&c](std::uint64_t ConfirmCounters::*f) { return [&c, f] { return FigureValue(c.*f); }; };
  r.family("postwatch_delivery_confirms_total", kCounter,
           "Confirmations published to agents (they release their spool on them).")
      .figure("confirms_published", "", field(&ConfirmCounters::confirms_published));
  r.family("postwatch_delivery_resend_requests_total", kCounter,
           "Agents asked to resend seqs the broker acknowledged but that never arrived.")
      .figure("confirm_resend_requests", "", field(&ConfirmCounters::resend_requests));
  r.family("postwatch_delivery_key_notices_total", kCounter,
           "Confirmations sent again to announce the aggregator's key rotation to agents not yet trusting it.")
      .figure("confirm_key_notices", "", field(&ConfirmCounters::key_notices));
  r.stats_only("confirm_settled_by_agent", field(&ConfirmCounters::settled_by_agent));
  r.stats_only("confirm_anchored", field(&ConfirmCounters::anchored));
  r.stats_only("confirm_dropped_given_up", field(&ConfirmCounters::dropped_given_up));
  r.stats_only("confirm_waiting_for_store", field(&ConfirmCounters::waiting_for_store));
}

}  // namespace postwatch::aggregator
