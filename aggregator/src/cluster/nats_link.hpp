// A thin, blocking wrapper over libnats (the C client of NATS): one connection with its
// JetStream context, key-value buckets and bound push consumers. Every call may wait for a
// server round trip, so the cluster calls them from its own worker thread, never from the
// aggregator's io_context (docs/scale-out.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct __natsConnection;
struct __jsCtx;
struct __kvStore;
struct __natsMsg;
struct __natsSubscription;
struct __kvWatcher;

namespace postwatch::aggregator {

// Why a key-value write was not done: `conflict` is the engine's own compare-and-set refusal
// (the key moved on, or exists); anything else is an error to retry.
struct KvWrite {
  std::uint64_t revision = 0;  // the new revision; 0 when not written
  bool conflict = false;
  std::string error;
  explicit operator bool() const { return revision != 0; }
};

struct KvEntry {
  std::string key, value;
  std::uint64_t revision = 0;
  bool deleted = false;  // a delete or purge marker
};

// A JetStream message held until it is acknowledged; destroyed (not acknowledged) otherwise.
class NatsMessage {
 public:
  NatsMessage(__natsConnection* nc, __natsMsg* m) : nc_(nc), msg_(m) {}
  ~NatsMessage();
  NatsMessage(const NatsMessage&) = delete;
  NatsMessage& operator=(const NatsMessage&) = delete;
  std::string_view subject() const;
  std::string_view data() const;
  bool ack();  // false when the server could not be told (it redelivers then)

 private:
  __natsConnection* nc_;
  __natsMsg* msg_;
};
using NatsMessagePtr = std::shared_ptr<NatsMessage>;

// Whether a watch has fallen behind its bucket: given the bucket's last revision and the last
// the watch has shown, each time it is asked, it says once the watch has not shown for `limit`
// a revision the bucket held when it was first seen missing. The clock is the caller's.
class WatchLag {
 public:
  using Time = std::chrono::steady_clock::time_point;
  bool stale(std::uint64_t bucket_last, std::uint64_t shown, Time now, std::chrono::milliseconds limit);
  void reset() { missing_ = 0; }

 private:
  std::uint64_t missing_ = 0;  // a revision the watch has not shown yet; 0: none
  Time missing_since_{};
};

struct KvWatchOptions {
  // Runs once, after the last of the values the bucket held when the watch began (at once
  // for an empty bucket), on the watch's thread.
  std::function<void()> on_current;
  // libnats' watch is an ordered consumer on one node: when that node dies, the watch brings
  // nothing until the engine has a new meta leader and the consumer is made again (30 s and
  // more seen in tests). With this set, the watch asks the bucket's stream for its last
  // revision every quarter of it, and watches again once it has not shown for this long a
  // revision the bucket held: every key's latest value comes again, then every change.
  // Zero: never.
  std::chrono::milliseconds stale_after{0};
  std::function<void(const std::string& what)> on_rewatch;  // told why, on the watch's thread
};

class KvBucket {
 public:
  KvBucket(__kvStore* kv, __jsCtx* js, std::string name) : kv_(kv), js_(js), name_(std::move(name)) {}
  ~KvBucket();
  KvBucket(const KvBucket&) = delete;
  KvBucket& operator=(const KvBucket&) = delete;
  const std::string& name() const { return name_; }

  KvWrite create(const std::string& key, std::string_view value);  // only if absent
  KvWrite update(const std::string& key, std::string_view value, std::uint64_t last_revision);
  KvWrite put(const std::string& key, std::string_view value);
  std::optional<KvEntry> get(const std::string& key, std::string* error = nullptr);
  bool remove(const std::string& key);
  std::vector<std::string> keys(std::string* error = nullptr);

  // Every key's latest value, then every change, until destruction. Runs `fn` on a thread of
  // its own.
  class Watch {
   public:
    Watch(__kvStore* kv, __jsCtx* js, std::string stream, __kvWatcher* w, std::function<void(KvEntry)> fn,
          KvWatchOptions options);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    struct State;
    std::unique_ptr<State> state_;
  };
  std::unique_ptr<Watch> watch_all(std::function<void(KvEntry)> fn, std::string* error = nullptr,
                                   KvWatchOptions options = {});

 private:
  __kvStore* kv_;
  __jsCtx* js_;  // the link's, which outlives its buckets
  std::string name_;
};

struct StreamSpec {
  std::string name;
  std::vector<std::string> subjects;
  int replicas = 1;
};

// A durable push consumer. Its deliver subject is fixed, so whoever holds the partition reads
// it with a plain subscription; what a holder received and did not acknowledge comes again
// after the ack wait, to whoever reads then.
struct ConsumerSpec {
  std::string stream, durable, filter_subject, deliver_subject;
  int replicas = 1;
  std::int64_t ack_wait_ms = 30'000;
  std::int64_t max_ack_pending = 20'000;
};

// A subscription; messages go to the handler on libnats' thread. Destruction drains it: no
// handler call runs or starts after the destructor returns.
class NatsSubscription {
 public:
  using Handler = std::function<void(NatsMessagePtr)>;
  explicit NatsSubscription(Handler h) : handler_(std::move(h)) {}
  ~NatsSubscription();
  NatsSubscription(const NatsSubscription&) = delete;
  NatsSubscription& operator=(const NatsSubscription&) = delete;

 private:
  friend class NatsLink;
  __natsSubscription* sub_ = nullptr;
  Handler handler_;
};

struct NatsLinkOptions {
  std::vector<std::string> servers;  // nats://host:port
  std::string name;                  // shown in the server's connection list
  std::string user, password;
  std::int64_t request_timeout_ms = 2'000;
};

// Told when the connection drops (`up` false) and when it is back (with the server's URL), on
// libnats' thread: a node that died shows in the log, not only as slow requests.
using NatsConnectionEvents = std::function<void(bool up, const std::string& url)>;

class NatsLink {
 public:
  // Connects (retrying in the background if no server answers yet); throws std::runtime_error
  // with libnats' text when the options are unusable.
  explicit NatsLink(const NatsLinkOptions& options, NatsConnectionEvents on_connection = {});
  ~NatsLink();
  NatsLink(const NatsLink&) = delete;
  NatsLink& operator=(const NatsLink&) = delete;

  bool connected() const;
  // Creates the stream, or checks an existing one captures the same subjects. "" on success.
  std::string ensure_stream(const StreamSpec& spec);
  // Creates the bucket if absent (ttl_ms 0: keys never expire). Null with `error` set otherwise.
  std::unique_ptr<KvBucket> bucket(const std::string& name, std::int64_t ttl_ms, int replicas, std::string& error);
  // Creates the consumer unless it exists. "" on success. Replicated like the stream: 2.9.10
  // never removes acknowledged messages from a work-queue stream for a single-replica
  // consumer that is not on the stream's leader (or for an in-memory one).
  std::string ensure_consumer(const ConsumerSpec& spec);
  std::unique_ptr<NatsSubscription> subscribe(const std::string& subject, NatsSubscription::Handler on_message,
                                              std::string& error);
  // False only when the server says the consumer is gone (an error is not an answer).
  bool consumer_exists(const std::string& stream, const std::string& durable);

 private:
  // Given to libnats' callbacks, which run on its own thread and may come after this link is
  // gone: freed by the last of them (the connection's closed callback).
  struct ConnectionEvents;
  ConnectionEvents* events_ = nullptr;
  __natsConnection* nc_ = nullptr;
  __jsCtx* js_ = nullptr;
  std::int64_t timeout_ms_;
};

}  // namespace postwatch::aggregator
