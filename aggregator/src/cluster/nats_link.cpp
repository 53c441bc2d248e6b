#include "cluster/nats_link.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

namespace postwatch::aggregator {

namespace {

// The thread's last error text, when it belongs to this status: libnats leaves the text of an
// earlier failure in place, and a timeout once read as the "wrong last sequence" of a lease
// create before it (a conflict, which gives the partition up).
std::string last_error(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  return last == s && text && *text ? std::string(text) : std::string(natsStatus_GetText(s));
}

// The engine refuses a compare-and-set with "wrong last sequence" (the key moved on, or
// already exists for a create).
KvWrite write_result(natsStatus s, std::uint64_t rev) {
  KvWrite w;
  if (s == NATS_OK) {
    w.revision = rev;
    return w;
  }
  w.error = last_error(s);
  w.conflict = s == NATS_ERR && w.error.find("wrong last sequence") != std::string::npos;
  return w;
}

KvEntry to_entry(kvEntry* e) {
  KvEntry out;
  out.key = kvEntry_Key(e);
  out.value.assign(static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(kvEntry_ValueLen(e)));
  out.revision = kvEntry_Revision(e);
  out.deleted = kvEntry_Operation(e) != kvOp_Put;
  return out;
}

}  // namespace

NatsMessage::~NatsMessage() { natsMsg_Destroy(msg_); }
std::string_view NatsMessage::subject() const { return natsMsg_GetSubject(msg_); }
std::string_view NatsMessage::data() const {
  return {natsMsg_GetData(msg_), static_cast<std::size_t>(natsMsg_GetDataLength(msg_))};
}
// A plain subscription's message: the acknowledgement is "+ACK" to its reply subject.
bool NatsMessage::ack() {
  const char* reply = natsMsg_GetReply(msg_);
  return reply && natsConnection_PublishString(nc_, reply, "+ACK") == NATS_OK;
}

KvBucket::~KvBucket() { kvStore_Destroy(kv_); }

KvWrite KvBucket::create(const std::string& key, std::string_view value) {
  std::uint64_t rev = 0;
  auto s = kvStore_Create(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  return write_result(s, rev);
}

KvWrite KvBucket::update(const std::string& key, std::string_view value, std::uint64_t last_revision) {
  std::uint64_t rev = 0;
  auto s = kvStore_Update(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()), last_revision);
  return write_result(s, rev);
}

KvWrite KvBucket::put(const std::string& key, std::string_view value) {
  std::uint64_t rev = 0;
  auto s = kvStore_Put(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  return write_result(s, rev);
}

std::optional<KvEntry> KvBucket::get(const std::string& key, std::string* error) {
  kvEntry* e = nullptr;
  auto s = kvStore_Get(&e, kv_, key.c_str());
  if (s == NATS_NOT_FOUND) return std::nullopt;  // absent or deleted
  if (s != NATS_OK) {
    if (error) *error = last_error(s);
    return std::nullopt;
  }
  auto out = to_entry(e);
  kvEntry_Destroy(e);
  return out;
}

bool KvBucket::remove(const std::string& key) { return kvStore_Delete(kv_, key.c_str()) == NATS_OK; }

std::vector<std::string> KvBucket::keys(std::string* error) {
  kvKeysList list{};
  std::vector<std::string> out;
  auto s = kvStore_Keys(&list, kv_, nullptr);
  if (s == NATS_OK) {
    for (int i = 0; i < list.Count; ++i) out.emplace_back(list.Keys[i]);
    kvKeysList_Destroy(&list);
  } else if (s != NATS_NOT_FOUND && error) {  // NOT_FOUND: no keys
    *error = last_error(s);
  }
  return out;
}

bool WatchLag::stale(std::uint64_t bucket_last, std::uint64_t shown, Time now, std::chrono::milliseconds limit) {
  if (shown >= bucket_last) {
    missing_ = 0;
    return false;
  }
  if (missing_ == 0 || shown >= missing_) {  // behind, but not on the revision first missed
    missing_ = bucket_last;
    missing_since_ = now;
    return false;
  }
  return now - missing_since_ >= limit;
}

struct KvBucket::Watch::State {
  kvStore* kv = nullptr;
  jsCtx* js = nullptr;
  std::string stream;
  std::mutex mutex;              // the watcher, between the watch's thread (which swaps it) and stop
  kvWatcher* watcher = nullptr;  // written only on the watch's thread
  bool stop = false;
  std::uint64_t shown = 0;  // the highest revision shown
  WatchLag lag;
  std::chrono::steady_clock::time_point next_probe{};
  std::thread thread;

  void probe(const KvWatchOptions& o);
  void rewatch(const KvWatchOptions& o, std::uint64_t bucket_last);
};

void KvBucket::Watch::State::probe(const KvWatchOptions& o) {
  auto now = std::chrono::steady_clock::now();
  if (o.stale_after.count() <= 0 || now < next_probe) return;
  next_probe = now + o.stale_after / 4;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<std::int64_t>(o.stale_after.count() / 4, 100);  // the destructor may wait on it
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, js, stream.c_str(), &jo, &code) != NATS_OK) return;  // asked again next time
  const std::uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  if (lag.stale(last, shown, now, o.stale_after)) rewatch(o, last);
}

void KvBucket::Watch::State::rewatch(const KvWatchOptions& o, std::uint64_t bucket_last) {
  auto why = "has not shown revision " + std::to_string(bucket_last) + " (it showed " + std::to_string(shown) +
             ") for " + std::to_string(o.stale_after.count()) + " ms";
  kvWatcher* fresh = nullptr;
  if (auto s = kvStore_WatchAll(&fresh, kv, nullptr); s != NATS_OK) {
    if (o.on_rewatch) o.on_rewatch(why + "; watching again failed, tried again shortly: " + last_error(s));
    return;
  }
  kvWatcher* old = nullptr;
  {
    std::lock_guard lock(mutex);
    if (stop) {
      kvWatcher_Destroy(fresh);
      return;
    }
    old = std::exchange(watcher, fresh);
  }
  kvWatcher_Stop(old);
  kvWatcher_Destroy(old);
  lag.reset();
  if (o.on_rewatch) o.on_rewatch(why + ": watching again");
}

KvBucket::Watch::Watch(kvStore* kv, jsCtx* js, std::string stream, kvWatcher* w, std::function<void(KvEntry)> fn,
                       KvWatchOptions options)
    : state_(std::make_unique<State>()) {
  state_->kv = kv;
  state_->js = js;
  state_->stream = std::move(stream);
  state_->watcher = w;
  state_->next_probe = std::chrono::steady_clock::now() + options.stale_after / 4;
  state_->thread = std::thread([s = state_.get(), fn = std::move(fn), o = std::move(options)]() mutable {
    for (;;) {
      kvEntry* e = nullptr;
      auto st = kvWatcher_Next(&e, s->watcher, 200);
      if (st == NATS_OK && e) {
        auto entry = to_entry(e);
        kvEntry_Destroy(e);
        s->shown = std::max(s->shown, entry.revision);
        fn(std::move(entry));
      } else if (st == NATS_OK) {  // a null entry marks the end of the initial values
        if (o.on_current) std::exchange(o.on_current, {})();
      }
      {
        std::lock_guard lock(s->mutex);
        if (s->stop) break;
      }
      if (st == NATS_ILLEGAL_STATE) break;  // stopped by libnats (its connection closed)
      s->probe(o);
    }
  });
}

KvBucket::Watch::~Watch() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stop = true;
    kvWatcher_Stop(state_->watcher);
  }
  if (state_->thread.joinable()) state_->thread.join();
  kvWatcher_Destroy(state_->watcher);
}

std::unique_ptr<KvBucket::Watch> KvBucket::watch_all(std::function<void(KvEntry)> fn, std::string* error,
                                                     KvWatchOptions options) {
  kvWatcher* w = nullptr;
  auto s = kvStore_WatchAll(&w, kv_, nullptr);
  if (s != NATS_OK) {
    if (error) *error = last_error(s);
    return nullptr;
  }
  return std::make_unique<Watch>(kv_, js_, "KV_" + name_, w, std::move(fn), std::move(options));
}

NatsSubscription::~NatsSubscription() {
  if (!sub_) return;
  // Drain: libnats stops delivery and waits until no handler call is running.
  if (natsSubscription_Drain(sub_) == NATS_OK) natsSubscription_WaitForDrainCompletion(sub_, 5'000);
  natsSubscription_Destroy(sub_);
}

struct NatsLink::ConnectionEvents {
  NatsConnectionEvents fn;
  std::atomic<bool> closing{false};  // our own close: not news

  static void disconnected(natsConnection*, void* self) {
    auto* e = static_cast<ConnectionEvents*>(self);
    if (!e->closing) e->fn(false, "");
  }
  static void reconnected(natsConnection* nc, void* self) {
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    static_cast<ConnectionEvents*>(self)->fn(true, url);
  }
  static void closed(natsConnection*, void* self) { delete static_cast<ConnectionEvents*>(self); }
};

NatsLink::NatsLink(const NatsLinkOptions& options, NatsConnectionEvents on_connection)
    : timeout_ms_(options.request_timeout_ms) {
  natsOptions* o = nullptr;
  if (natsOptions_Create(&o) != NATS_OK) throw std::runtime_error("nats: out of memory");
  std::vector<const char*> urls;
  for (const auto& s : options.servers) urls.push_back(s.c_str());
  natsStatus s = natsOptions_SetServers(o, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK && !options.name.empty()) s = natsOptions_SetName(o, options.name.c_str());
  if (s == NATS_OK && !options.user.empty())
    s = natsOptions_SetUserInfo(o, options.user.c_str(), options.password.c_str());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);  // a cluster node comes back, or another answers
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 250);
  if (s == NATS_OK) s = natsOptions_SetTimeout(o, options.request_timeout_ms);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(o, true, nullptr, nullptr);
  if (s == NATS_OK && on_connection) {
    events_ = new ConnectionEvents{std::move(on_connection)};
    s = natsOptions_SetDisconnectedCB(o, &ConnectionEvents::disconnected, events_);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, &ConnectionEvents::reconnected, events_);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(o, &ConnectionEvents::closed, events_);
  }
  if (s == NATS_OK) s = natsConnection_Connect(&nc_, o);
  natsOptions_Destroy(o);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    delete events_;  // no connection was made, so no callback comes
    throw std::runtime_error("nats: " + last_error(s));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options.request_timeout_ms;
  if ((s = natsConnection_JetStream(&js_, nc_, &jo)) != NATS_OK) {
    natsConnection_Destroy(nc_);
    throw std::runtime_error("nats: JetStream: " + last_error(s));
  }
}

NatsLink::~NatsLink() {
  if (events_) events_->closing = true;  // freed by the closed callback, after this
  jsCtx_Destroy(js_);
  natsConnection_Close(nc_);
  natsConnection_Destroy(nc_);
}

bool NatsLink::connected() const { return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED; }

std::string NatsLink::ensure_stream(const StreamSpec& spec) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_GetStreamInfo(&si, js_, spec.name.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    std::string problem;
    for (const auto& want : spec.subjects) {
      bool found = false;
      for (int i = 0; i < si->Config->SubjectsLen; ++i) found = found || want == si->Config->Subjects[i];
      if (!found) problem = "stream " + spec.name + " exists but does not capture " + want;
    }
    jsStreamInfo_Destroy(si);
    return problem;
  }
  if (s != NATS_NOT_FOUND) return "stream " + spec.name + ": " + last_error(s);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  std::vector<const char*> subjects;
  for (const auto& x : spec.subjects) subjects.push_back(x.c_str());
  cfg.Name = spec.name.c_str();
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Replicas = spec.replicas;
  // A message leaves the stream when its partition's holder acknowledges it, which it does
  // only once a snapshot and its own store cover it (docs/scale-out.md).
  cfg.Retention = js_WorkQueuePolicy;
  cfg.Storage = js_FileStorage;
  s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
  if (s != NATS_OK) return "creating stream " + spec.name + ": " + last_error(s);
  jsStreamInfo_Destroy(si);
  return "";
}

std::unique_ptr<KvBucket> NatsLink::bucket(const std::string& name, std::int64_t ttl_ms, int replicas,
                                           std::string& error) {
  kvStore* kv = nullptr;
  auto s = js_KeyValue(&kv, js_, name.c_str());
  if (s == NATS_NOT_FOUND) {
    kvConfig cfg;
    kvConfig_Init(&cfg);
    cfg.Bucket = name.c_str();
    cfg.History = 1;
    cfg.TTL = ttl_ms * 1'000'000;  // nanoseconds
    cfg.Replicas = replicas;
    s = js_CreateKeyValue(&kv, js_, &cfg);
  }
  if (s != NATS_OK) {
    error = "key-value bucket " + name + ": " + last_error(s);
    return nullptr;
  }
  return std::make_unique<KvBucket>(kv, js_, name);
}

namespace {
void on_nats_message(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
  auto* handler = static_cast<NatsSubscription::Handler*>(closure);
  (*handler)(std::make_shared<NatsMessage>(nc, msg));
}
}  // namespace

std::string NatsLink::ensure_consumer(const ConsumerSpec& spec) {
  if (consumer_exists(spec.stream, spec.durable)) return "";
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = spec.durable.c_str();
  cc.FilterSubject = spec.filter_subject.c_str();
  cc.DeliverSubject = spec.deliver_subject.c_str();
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = spec.ack_wait_ms * 1'000'000;
  cc.MaxAckPending = spec.max_ack_pending;
  cc.MaxDeliver = -1;
  cc.Replicas = spec.replicas;
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_AddConsumer(&ci, js_, spec.stream.c_str(), &cc, nullptr, &jerr);
  if (s != NATS_OK) return "creating consumer " + spec.durable + ": " + last_error(s);
  jsConsumerInfo_Destroy(ci);
  return "";
}

std::unique_ptr<NatsSubscription> NatsLink::subscribe(const std::string& subject, NatsSubscription::Handler on_message,
                                                      std::string& error) {
  auto sub = std::make_unique<NatsSubscription>(std::move(on_message));
  auto s = natsConnection_Subscribe(&sub->sub_, nc_, subject.c_str(), on_nats_message, &sub->handler_);
  if (s != NATS_OK) {
    error = "subscribing to " + subject + ": " + last_error(s);
    return nullptr;
  }
  return sub;
}

bool NatsLink::consumer_exists(const std::string& stream, const std::string& durable) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_GetConsumerInfo(&ci, js_, stream.c_str(), durable.c_str(), nullptr, &jerr);
  if (s == NATS_OK) jsConsumerInfo_Destroy(ci);
  return s != NATS_NOT_FOUND;
}

}  // namespace postwatch::aggregator
