#include "service_impl.hpp"

namespace postwatch::aggregator {

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
  // Clustered, events reach the instances through JetStream partitions (JetStreamCluster); every
  // instance hears each enrolment request, and the holder of the post's partition answers it.
  f.push_back(std::string(topics::enrol_filter));
  if (o.cluster_group.empty()) {
    f.insert(f.begin(), std::string(topics::events_filter));
    f.push_back(std::string(command_result_filter));  // remote commands (docs/fleet.md)
  }
  return f;
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

AggregatorService::Impl::Impl(boost::asio::io_context& io, AggregatorOptions o,
                              std::shared_ptr<const IndicatorCatalogue> c, std::shared_ptr<spdlog::logger> l,
                              std::shared_ptr<const TargetCatalogue> t)
    : io_context(io),
      options(checked(std::move(o))),
      catalogue(std::move(c)),
      targets(t ? std::move(t) : std::make_shared<const TargetCatalogue>()),
      log(std::move(l)),
      access(load_access(options)),
      store(store_options(options), *catalogue, log),
      trust(
          load_identity(options), options.require_signatures,
          [this](std::string key, std::string body) { store.save_trust_record(std::move(key), std::move(body)); }, log,
          options.key_rotation_grace_ms),
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
      stream(std::make_shared<LiveStream>(log,
                                          LiveStreamOptions{options.stream_max_queue, options.stream_max_clients,
                                                            std::chrono::milliseconds(options.stream_idle_timeout_ms)},
                                          [this] {
                                            auto now = now_utc_ms();
                                            auto j = stream_snapshot_json(*catalogue, board, now);
                                            for (auto& a : j["alarms"]) mark_alarm(a, now);
                                            return dump_json(j);
                                          })),
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
           HttpCallbacks{
               [this](const HttpRequest& req) { return routes.handle(req); },
               [this](const HttpRequest& req) { return routes.check_upgrade(req); }, stream,
               [this](const HttpRequest& req, const HttpReply& reply) { return routes.handle_deferred(req, reply); }}),
      mqtt(
          io, options.broker_uri, options.client_id, ingest_filters(options), log,
          [this](const std::string& topic, const std::string& payload, const Prechecked& pre) {
            dispatch(topic, payload, pre);
          },
          IngestFlowControl{options.max_queued_messages,
                            [this] { return store.pending_events() >= options.max_store_backlog_events; }}),
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
  // The instance joins the group once its aggregator key proved the others' (tick()).
  if (impl_->shared_trust) impl_->shared_trust->start();
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
  if (impl_->shared_trust && !impl_->stopped) impl_->shared_trust->stop();
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
