// Silences and maintenance windows (docs/alerting.md, "Silences and maintenance windows"):
// operators say "nobody needs telling about alarms like these, from now until then". While a
// silence holds, the board still shows every alarm, but the alarms it matches are not
// notified. A maintenance window is a silence for posts (it must name posts or regions) that
// also keeps its posts from being counted as silent: a post switched off for planned works
// is not missing.
//
// The book lives on the io thread. Silences are kept in the store (EventStore::save_silence),
// listed with their state, and expire by themselves; ended ones are kept 30 days for the record.
#pragma once

#include "alerting/alarm_notice.hpp"
#include "alerting/notification_config.hpp"
#include "postwatch/catalogue.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

struct Silence {
  std::uint64_t id = 0;
  bool maintenance = false;
  AlarmMatcher match;
  std::int64_t starts_at_ms = 0, ends_at_ms = 0;
  std::string comment, created_by;
  std::int64_t created_at_ms = 0;
  std::int64_t ended_at_ms = 0;  // an operator ended it early (DELETE); 0 otherwise
  std::string ended_by;

  std::int64_t end_ms() const { return ended_at_ms != 0 && ended_at_ms < ends_at_ms ? ended_at_ms : ends_at_ms; }
  bool holds(std::int64_t now_ms) const { return starts_at_ms <= now_ms && now_ms < end_ms(); }
  const char* state(std::int64_t now_ms) const {  // pending, active or expired
    return now_ms < starts_at_ms ? "pending" : holds(now_ms) ? "active" : "expired";
  }
};

// The longest a silence may last: a forgotten silence must not hide a post for ever.
inline constexpr std::int64_t kMaxSilenceMs = 90LL * 24 * 3600 * 1000;
// How long an ended silence stays listed.
inline constexpr std::int64_t kKeepEndedSilenceMs = 30LL * 24 * 3600 * 1000;

// As the API shows it (and the store keeps it), with its state at `now_ms`.
nlohmann::json silence_json(const Silence& s, std::int64_t now_ms);
// From the store's copy; nullopt when it does not read back.
std::optional<Silence> silence_from_json(const nlohmann::json& j);

// A new silence from an API request body:
//   {"match": {...}, "comment": "...", "by": "...", "maintenance": false,
//    "starts_at_ms": ..., "ends_at_ms": ... | "duration_s": ...}
// `match` takes the fields of a route's matcher (kind, level, goal, pillar, region, post);
// starts_at_ms defaults to now. `by` defaults to `default_by` (the token's name). Returns the
// silence (id 0) or throws std::invalid_argument with a message for the caller.
Silence silence_from_request(const nlohmann::json& body, const IndicatorCatalogue& catalogue,
                             const std::string& default_by, std::int64_t now_ms);

// The lowest id an instance of a cluster files a silence under: its creation time in ms and
// ten bits of the instance's name, so two instances taking one in the same moment still
// differ (unless their names share those bits: 1 in 1024), and ids still sort by time.
std::uint64_t cluster_silence_id(std::int64_t now_ms, std::string_view instance);

class SilenceBook {
 public:
  explicit SilenceBook(const IndicatorCatalogue& catalogue) : catalogue_(catalogue) {}

  // What the store kept; ids continue after the highest.
  void restore(std::vector<Silence> silences);
  // Clustered: ids from here on are at least cluster_silence_id(created_at_ms, instance), so
  // they stay apart between the instances of a cluster.
  void use_cluster_ids(std::string instance) { instance_ = std::move(instance); }
  // Files `s` under the next id and returns it.
  const Silence& add(Silence s);
  // A silence another instance took or ended (docs/scale-out.md): filed under its own id, or
  // ending ours; an end is never undone. False when it changes nothing.
  bool merge(const Silence& s);
  // Ends silence `id` now; nullopt when there is none. Ending an ended one changes nothing.
  std::optional<Silence> end(std::uint64_t id, const std::string& by, std::int64_t now_ms);

  // Whether a holding silence matches the alarm; `why` (optional) gets its id.
  bool silenced(const AlarmNotice& a, std::int64_t now_ms, std::uint64_t* why = nullptr) const;
  // Per catalogue post: the id of a holding maintenance window that covers it, or 0.
  std::vector<std::uint64_t> maintenance(std::int64_t now_ms) const;

  // Silences that started or ended since the last call (for the log and re-evaluating alarms),
  // and drops those ended more than kKeepEndedSilenceMs ago (returned in `dropped`).
  struct Transitions {
    std::vector<std::uint64_t> started, ended, dropped;
    bool empty() const { return started.empty() && ended.empty() && dropped.empty(); }
  };
  Transitions tick(std::int64_t now_ms);

  const std::vector<Silence>& all() const { return silences_; }
  const Silence* find(std::uint64_t id) const;

 private:
  const IndicatorCatalogue& catalogue_;
  std::vector<Silence> silences_;       // by id
  std::vector<std::uint64_t> holding_;  // as of the last tick
  std::uint64_t next_id_ = 1;
  std::string instance_;  // clustered: see use_cluster_ids
};

}  // namespace postwatch::aggregator
