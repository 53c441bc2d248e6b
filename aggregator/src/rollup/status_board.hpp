// What the operations centre sees: goal and pillar statuses that change only
// after holding for a minimum duration, and alarms raised and cleared from them.
// Fed one RollupSnapshot per tick; everything here runs on the io_context.
#pragma once

#include "postwatch/catalogue.hpp"
#include "rollup/goal_rollup.hpp"
#include "rollup/topic_mismatch_log.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

struct BoardPolicy {
  std::int64_t min_duration_ms = 30'000;  // a new goal/pillar status must hold this long to show
  // This many topic-mismatch attempts from one post within the window raise a
  // "topic_mismatch" alarm; it clears once a whole window passes without one.
  std::size_t mismatch_attempts = 3;
  std::int64_t mismatch_window_ms = std::int64_t{10} * 60'000;
};

struct ShownStatus {
  Status shown = Status::Unknown;
  std::int64_t since_ms = 0;
  Status candidate = Status::Unknown;  // the differing raw status waiting out min_duration
  std::int64_t candidate_since_ms = 0;
  double health = 0;  // last known weighted mean health (0..1); kept while the data is away
  double score = 0;   // score_in_band(shown, health): agrees with `shown` (0 and null when unknown)
};

// What an alarm is about; its name is what the API, the store and the notification routes use.
enum class AlarmKind : std::uint8_t { Goal, PostSilent, TopicMismatch, ClockOffset, StoreFailing };
std::string_view to_string(AlarmKind k);  // "goal", "post_silent", "topic_mismatch", "clock_offset", "store_failing"
std::optional<AlarmKind> parse_alarm_kind(std::string_view s);
inline constexpr AlarmKind kAlarmKinds[] = {AlarmKind::Goal, AlarmKind::PostSilent, AlarmKind::TopicMismatch,
                                            AlarmKind::ClockOffset, AlarmKind::StoreFailing};

// Which kind of status changed; named "goal" or "pillar" in the API and the store's history.
enum class StatusScope : std::uint8_t { Goal, Pillar };
std::string_view to_string(StatusScope s);
std::optional<StatusScope> parse_status_scope(std::string_view s);
// In JSON by name, as the API shows them (nlohmann would otherwise write an enum's number).
void to_json(nlohmann::json& j, AlarmKind k);
void to_json(nlohmann::json& j, StatusScope s);

struct AlarmCause {
  std::string post, indicator;
  double value = 0;
  Status status = Status::Unknown;
};

struct Alarm {
  std::uint64_t id = 0;
  AlarmKind kind = AlarmKind::Goal;
  int goal = 0;                          // kind goal
  std::string post;                      // kind post_silent; topic_mismatch: the post whose topic was used
  Status level = Status::Unknown;        // what it is now: a goal alarm follows its goal down to amber
  Status worst_level = Status::Unknown;  // the highest level it reached while open
  std::int64_t raised_at_ms = 0;
  std::int64_t cleared_at_ms = 0;  // 0 while open
  std::vector<AlarmCause> causes;
  std::string acked_by, ack_comment;
  std::int64_t acked_at_ms = 0;
  bool open() const { return cleared_at_ms == 0; }
};

struct StatusChange {
  StatusScope scope = StatusScope::Goal;
  std::string id;
  Status from = Status::Unknown, to = Status::Unknown;
  double score = 0;
  std::int64_t at_ms = 0;
};

struct BoardChanges {
  std::vector<StatusChange> statuses;
  std::vector<std::uint64_t> alarms;  // ids raised, escalated, cleared or acknowledged
  bool empty() const { return statuses.empty() && alarms.empty(); }
};

class StatusBoard {
 public:
  StatusBoard(const IndicatorCatalogue& catalogue, BoardPolicy policy = {});

  BoardChanges tick(const RollupSnapshot& raw, const std::vector<bool>& silent, std::int64_t now_ms);

  // An agent whose clock is off enough that its times are corrected: a warning (amber) alarm
  // for its post until the next tick() that does not name it, so someone fixes its NTP.
  // The cause's indicator is the agent, its value the offset in seconds.
  struct ClockOff {
    std::uint32_t post = 0;  // catalogue index
    std::string agent;
    double offset_s = 0;
  };
  void set_clock_offsets(std::vector<ClockOff> off) { clock_off_ = std::move(off); }

  // The store cannot commit (a full disk): a red "store_failing" alarm until the next tick()
  // after it can again. `waiting`: the events held in memory meanwhile, for the alarm's cause.
  void set_store_failing(bool failing, std::uint64_t waiting) {
    store_failing_ = failing;
    store_waiting_ = waiting;
  }

  // A batch on `topic_post`'s topic claimed to be from another post/agent (`claimed`,
  // "post/agent"). Repeated attempts raise an alarm at the next tick.
  void record_topic_mismatch(const std::string& topic_post, const std::string& claimed, std::int64_t now_ms);

  // Returns the alarm, or nullopt when there is no such id.
  std::optional<Alarm> acknowledge(std::uint64_t id, const std::string& by, const std::string& comment,
                                   std::int64_t now_ms);

  const std::vector<ShownStatus>& goals() const { return goals_; }      // catalogue order
  const std::vector<ShownStatus>& pillars() const { return pillars_; }  // catalogue order
  const std::vector<Alarm>& alarms() const { return alarms_; }
  const Alarm* find_alarm(std::uint64_t id) const;
  const RollupSnapshot& last() const { return last_; }

  // Restores what a store kept across a restart.
  void restore(std::vector<ShownStatus> goals, std::vector<ShownStatus> pillars, std::vector<Alarm> alarms);

  // In a cluster, an instance that does not lead shows the leader's board: it keeps the raw
  // roll-up of its own state (observe) and takes statuses and alarms from the leader's image
  // (adopt), which returns what changed, as tick() would have.
  void observe(const RollupSnapshot& raw) { last_ = raw; }
  BoardChanges adopt(std::vector<ShownStatus> goals, std::vector<ShownStatus> pillars, std::vector<Alarm> alarms);

 private:
  bool debounce(ShownStatus& s, Status raw, std::int64_t now_ms);
  void update_goal_alarm(std::size_t goal_index, std::int64_t now_ms, BoardChanges& out);
  void update_silent_alarms(const std::vector<bool>& silent, std::int64_t now_ms, BoardChanges& out);
  void update_mismatch_alarms(std::int64_t now_ms, BoardChanges& out);
  void update_clock_alarms(std::int64_t now_ms, BoardChanges& out);
  void update_store_alarm(std::int64_t now_ms, BoardChanges& out);
  Alarm* open_alarm(AlarmKind kind, int goal, const std::string& post);
  // Files `a` as a new alarm (next id, what it is about, when); returns its id.
  std::uint64_t raise_alarm(Alarm a, AlarmKind kind, int goal, const std::string& post, std::int64_t now_ms);

  const IndicatorCatalogue& catalogue_;
  BoardPolicy policy_;
  std::vector<ShownStatus> goals_, pillars_;
  std::vector<Alarm> alarms_;
  std::uint64_t next_alarm_id_ = 1;
  RollupSnapshot last_;
  std::vector<ClockOff> clock_off_;
  bool store_failing_ = false;
  std::uint64_t store_waiting_ = 0;
  struct MismatchAttempts : TopicMismatchLog {  // the last policy_.mismatch_attempts attempts
    std::uint64_t reported_total = 0;           // in the alarm's causes
  };
  std::map<std::string, MismatchAttempts, std::less<>> mismatches_;  // by topic post
};

}  // namespace postwatch::aggregator
