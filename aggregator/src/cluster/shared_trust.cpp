#include "cluster/shared_trust.hpp"

#include "postwatch/clock.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <future>

namespace postwatch::aggregator {
using nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {
// Each instance writes its signer entry this often; one not written for three times as long
// (by the reader's clock, and by the time it names) is a gone instance's.
constexpr std::int64_t kSignerEveryMs = 5'000;
constexpr int kWriteAttempts = 8;  // compare-and-set rounds before giving up on a busy entry
}  // namespace

// The io_context's side: the other instances' keys and the counters the API shows.
struct SharedTrust::View {
  struct Signer {
    std::string key_id;
    bool agrees = false;
    SteadyClock::time_point seen{};
    std::int64_t at_ms = 0;
  };
  std::string own_key_id;
  std::map<std::string, Signer> signers;  // the other instances, by name
  bool connected = false;
  SteadyClock::time_point connected_at{};
  bool current = false;  // the watch has brought every entry the bucket held when it began
  std::string engine_problem;
  std::uint64_t entries_taken = 0, decided = 0, conflicts = 0;
  std::uint64_t agents_refused = 0;  // agent entries refused: sealed with a key this instance lacks
  std::string logged;                // the disagreement last logged

  bool live(const Signer& s) const {
    return SteadyClock::now() - s.seen < milliseconds(3 * kSignerEveryMs) &&
           now_utc_ms() - s.at_ms < 3 * kSignerEveryMs;
  }
  std::vector<std::string> disagreeing() const {
    std::vector<std::string> out;
    for (const auto& [name, s] : signers)
      if (live(s) && !s.agrees) out.push_back(name + " (key " + s.key_id + ")");
    return out;
  }
  std::size_t agreeing() const {
    std::size_t n = 1;  // this instance
    for (const auto& [name, s] : signers) n += live(s) && s.agrees;
    return n;
  }
};

SharedTrust::SharedTrust(boost::asio::io_context& io, const JetStreamClusterOptions& options, SigningKey aggregator_key,
                         std::vector<std::uint8_t> enrolment_secret, std::int64_t rotation_grace_ms, Hooks hooks,
                         std::shared_ptr<spdlog::logger> log)
    : core_io_(io),
      options_(options),
      key_(std::move(aggregator_key)),
      secret_(std::move(enrolment_secret)),
      grace_ms_(rotation_grace_ms),
      hooks_(std::move(hooks)),
      log_(std::move(log)),
      view_(std::make_shared<View>()),
      guard_(io_.get_executor()),
      timer_(io_) {
  view_->own_key_id = key_.key_id();
}

SharedTrust::~SharedTrust() {
  guard_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
  watch_.reset();
  bucket_.reset();
  link_.reset();
}

template <class Fn>
void SharedTrust::to_view(Fn&& fn) {
  boost::asio::post(core_io_, [view = std::weak_ptr<View>(view_), fn = std::forward<Fn>(fn)]() mutable {
    if (auto v = view.lock()) fn(*v);
  });
}

void SharedTrust::start() {
  thread_ = std::thread([this] { io_.run(); });
  boost::asio::post(io_, [this] { cycle(); });
}

void SharedTrust::stop() {
  if (!thread_.joinable()) return;
  std::promise<void> done;
  auto f = done.get_future();
  boost::asio::post(io_, [this, &done] {
    timer_.cancel();
    if (bucket_) bucket_->remove(signer_entry_key(options_.instance));
    done.set_value();
  });
  f.wait_for(std::chrono::seconds(2));
  guard_.reset();
  io_.stop();
  thread_.join();
}

bool SharedTrust::setup() {
  std::string error;
  try {
    if (!link_)
      link_ = std::make_unique<NatsLink>(NatsLinkOptions{options_.servers,
                                                         "postwatch-aggregator " + options_.instance + " trust",
                                                         options_.user, options_.password, 2'000});
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  if (error.empty() && !link_->connected()) error = "no NATS server answers yet";
  if (error.empty() && !bucket_)
    bucket_ = link_->bucket("postwatch-" + options_.group + "-trust", 0, options_.replicas, error);
  if (error.empty() && !watch_) {
    KvWatchOptions o;
    o.on_current = [this] { to_view([](View& v) { v.current = true; }); };
    o.stale_after = std::chrono::milliseconds(2 * options_.lease_ms);  // as the cluster's own (docs/scale-out.md)
    o.on_rewatch = [log = log_](const std::string& what) { log->warn("cluster trust: the registry's watch {}", what); };
    watch_ = bucket_->watch_all([this](const KvEntry& e) { on_entry(e); }, &error, std::move(o));
  }
  if (error != last_problem_ && !error.empty())
    log_->error("cluster trust: the shared key registry is not reachable: {}", error);
  last_problem_ = error;
  to_view([ok = error.empty(), error](View& v) {
    if (ok && !v.connected) v.connected_at = SteadyClock::now();
    v.connected = ok;
    v.engine_problem = error;
  });
  return error.empty();
}

void SharedTrust::cycle() {
  if (watch_ || setup()) {
    put_signer();
    flush();
  }
  timer_.expires_after(milliseconds(1'000));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) cycle();
  });
}

void SharedTrust::put_signer() {
  auto now = SteadyClock::now();
  if (now - signer_put_at_ < milliseconds(kSignerEveryMs)) return;
  const auto k = signer_entry_key(options_.instance);
  auto body = json{{"instance", options_.instance}, {"public_key", to_hex(key_.public_key())}, {"at_ms", now_utc_ms()}};
  if (bucket_->put(k, seal_entry(key_, options_.group, k, body.dump()))) signer_put_at_ = now;
}

void SharedTrust::refuse(const std::string& key, const std::string& why) {
  auto n = ++refused_;
  if (n <= 20 || n % 100 == 0)
    log_->error(
        "cluster trust: refused entry '{}' of the shared key registry ({} refused so far): {}; nothing was taken "
        "from it (written by an instance with another aggregator key, or by someone without it)",
        key, n, why);
}

void SharedTrust::on_entry(const KvEntry& e) {
  const std::string& k = e.key;
  if (e.deleted) {  // an instance that stopped: compare with it no more
    if (k.starts_with("signer.")) to_view([instance = k.substr(7)](View& v) { v.signers.erase(instance); });
    return;  // an agent's or token's entry removed is forgotten by nobody: merging only adds
  }
  auto opened = open_entry(key_.public_key(), options_.group, k, e.value);
  if (k.starts_with("signer.")) {
    auto instance = k.substr(7);
    if (instance == options_.instance) return;
    if (!opened.verified && opened.key_id.empty()) return refuse(k, opened.why);
    auto body = json::parse(opened.body, nullptr, false);
    std::int64_t at_ms = body.is_object() ? body.value("at_ms", std::int64_t{0}) : 0;
    std::string id = opened.verified ? key_.key_id() : opened.key_id;
    to_view([instance, id, agrees = opened.verified, at_ms](View& v) {
      v.signers[instance] = {id, agrees, SteadyClock::now(), at_ms};
    });
    return;
  }
  if (!opened.verified) {
    if (k.starts_with("agent.")) to_view([](View& v) { ++v.agents_refused; });
    return refuse(k, opened.why);
  }
  if (k.starts_with("agent.")) {
    std::vector<AgentKey> keys;
    if (!parse_agent_record(opened.body, keys) || keys.empty()) return refuse(k, "it holds no agent's keys");
    for (const auto& each : keys)
      if (agent_entry_key(each.post, each.agent) != k) return refuse(k, "it holds the key of another agent");
    to_view([keys = std::move(keys), fn = hooks_.agent](View& v) {
      ++v.entries_taken;
      fn(keys);
    });
  } else if (k.starts_with("token.")) {
    IssuedToken t;
    if (!from_json(json::parse(opened.body, nullptr, false), t) || token_entry_key(t.id) != k)
      return refuse(k, "it holds no token of its name");
    to_view([t = std::move(t), fn = hooks_.token](View& v) {
      ++v.entries_taken;
      fn(t);
    });
  } else {
    refuse(k, "no entry of the registry has that name");
  }
}

void SharedTrust::share_token(const IssuedToken& token) {
  boost::asio::post(io_, [this, token] {
    pending_tokens_[token.id] = token;
    if (bucket_) flush();
  });
}

void SharedTrust::share_agent(std::vector<AgentKey> keys) {
  if (keys.empty()) return;
  boost::asio::post(io_, [this, keys = std::move(keys)] {
    auto& pending = pending_agents_[agent_entry_key(keys.front().post, keys.front().agent)];
    pending = merge_keys(std::move(pending), keys);
    if (bucket_) flush();
  });
}

void SharedTrust::flush() {
  for (auto it = pending_tokens_.begin(); it != pending_tokens_.end();) {
    const auto k = token_entry_key(it->first);
    if (!bucket_->put(k, seal_entry(key_, options_.group, k, to_json(it->second).dump()))) return;  // next cycle
    it = pending_tokens_.erase(it);
  }
  for (auto it = pending_agents_.begin(); it != pending_agents_.end();) {
    if (!write_agent(it->first, it->second)) {
      ++it;
      continue;
    }
    it = pending_agents_.erase(it);
  }
}

std::optional<SharedTrust::StoredAgent> SharedTrust::read_agent(const std::string& key, std::string& error) {
  auto e = bucket_->get(key, &error);
  if (!error.empty()) return std::nullopt;
  StoredAgent out;
  if (e) {
    out.revision = e->revision;
    auto opened = open_entry(key_.public_key(), options_.group, key, e->value);
    out.valid = opened.verified && parse_agent_record(opened.body, out.keys);
    if (!out.valid) out.keys.clear();  // written over: it was refused when it came anyway
  }
  return out;
}

KvWrite SharedTrust::write_agent_entry(const std::string& key, const std::vector<AgentKey>& keys,
                                       std::uint64_t revision) {
  auto sealed = seal_entry(key_, options_.group, key, agent_record_body(keys));
  return revision ? bucket_->update(key, sealed, revision) : bucket_->create(key, sealed);
}

bool SharedTrust::write_agent(const std::string& key, const std::vector<AgentKey>& keys) {
  for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
    std::string error;
    auto shared = read_agent(key, error);
    if (!shared) return false;
    auto merged = merge_keys(shared->keys, keys);
    if (shared->valid && same_keys(merged, shared->keys)) return true;
    auto w = write_agent_entry(key, merged, shared->revision);
    if (w) return true;
    if (!w.conflict) return false;
    to_view([](View& v) { ++v.conflicts; });
  }
  return false;
}

std::optional<IssuedToken> SharedTrust::read_token(const std::string& id) {
  const auto k = token_entry_key(id);
  auto e = bucket_->get(k);
  if (!e) return std::nullopt;
  auto opened = open_entry(key_.public_key(), options_.group, k, e->value);
  IssuedToken t;
  if (!opened.verified || !from_json(json::parse(opened.body, nullptr, false), t) || t.id != id) return std::nullopt;
  return t;
}

void SharedTrust::decide(EnrolRequest request, std::vector<std::uint8_t> payload, std::vector<AgentKey> local,
                         std::optional<IssuedToken> token, std::int64_t now_ms,
                         std::function<void(AgentDecision)> done) {
  boost::asio::post(io_, [this, r = std::move(request), payload = std::move(payload), local = std::move(local),
                          token = std::move(token), now_ms, done = std::move(done)]() mutable {
    auto d = decide_now(r, payload, local, std::move(token), now_ms);
    to_view([d = std::move(d), done = std::move(done)](View& v) mutable {
      ++v.decided;
      done(std::move(d));
    });
  });
}

AgentDecision SharedTrust::decide_now(const EnrolRequest& r, std::span<const std::uint8_t> payload,
                                      const std::vector<AgentKey>& local, std::optional<IssuedToken> token,
                                      std::int64_t now_ms) {
  auto refusal = [&](std::string why) {
    AgentDecision d;
    d.reply = {r.agent_id, r.post_id, r.token_id, false, std::move(why), "", now_ms};
    return d;
  };
  if (!bucket_) return refusal("the cluster's key registry is not reachable yet; try again");
  const auto key = agent_entry_key(r.post_id, r.agent_id);
  if (!token && !r.rotation()) token = read_token(r.token_id);  // issued on another instance just now
  for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
    std::string error;
    auto shared = read_agent(key, error);
    if (!shared) return refusal("the cluster's key registry cannot be read now (" + error + "); try again");
    auto d = decide_on_record(secret_, key_, merge_keys(local, shared->keys), token, r, payload, now_ms, grace_ms_);
    if (!d.changed) return d;
    // The compare-and-set that keeps one key in force and each token used once, cluster-wide.
    auto w = write_agent_entry(key, d.keys, shared->revision);
    if (w) return d;
    if (!w.conflict) return refusal("the cluster's key registry refused the write (" + w.error + "); try again");
    to_view([](View& v) { ++v.conflicts; });
  }
  return refusal("agent " + r.post_id + "/" + r.agent_id + "'s entry kept changing; try again");
}

bool SharedTrust::settled() const {
  // Once the watch has brought every entry the bucket held (the others' keys, the agents'
  // entries), the instance can tell whether it may join. The 2 s are a fallback in case the
  // engine never marks the end of them.
  return view_->connected && (view_->current || SteadyClock::now() - view_->connected_at >= milliseconds(2'000));
}

bool SharedTrust::may_join() const {
  const auto& v = *view_;
  return settled() && (key_agrees() || v.agents_refused == 0 || v.entries_taken > 0);
}

bool SharedTrust::key_agrees() const { return view_->agreeing() > view_->disagreeing().size(); }

std::string SharedTrust::problem() const {
  auto others = view_->disagreeing();
  if (others.empty()) return {};
  std::string names;
  for (const auto& n : others) names += (names.empty() ? "" : ", ") + n;
  return "instance(s) " + names + " sign with another aggregator key than this one's (" + view_->own_key_id +
         (key_agrees() ? ")" : "), and most live instances do not sign with this one's") +
         "; give every instance the same keys/aggregator.key and keys/enrolment.secret (docs/security.md, \"Key "
         "custody\")";
}

void SharedTrust::tick() {
  auto p = problem();
  if (p == view_->logged) return;
  if (p.empty())
    log_->info("cluster trust: every live instance signs with aggregator key {}", view_->own_key_id);
  else
    log_->error("cluster trust: {}", p);
  view_->logged = p;
}

json SharedTrust::status_json() const {
  const auto& v = *view_;
  const auto p = problem();
  json instances = json::object();
  for (const auto& [name, s] : v.signers)
    if (v.live(s)) instances[name] = {{"key_id", s.key_id}, {"agrees", s.agrees}};
  return {{"aggregator_key_id", v.own_key_id}, {"key_agrees", key_agrees()},
          {"instances", std::move(instances)}, {"problem", p.empty() ? v.engine_problem : p},
          {"entries_taken", v.entries_taken},  {"entries_refused", refused_.load()},
          {"enrolments_decided", v.decided},   {"entry_conflicts", v.conflicts}};
}

}  // namespace postwatch::aggregator
