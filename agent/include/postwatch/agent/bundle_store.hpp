// The fleet bundles an agent holds on disk and which of them it runs (docs/fleet.md, "On the
// agent"). The bundle files are written and synced first; every change of what is in force is
// then one rename of state.json. A crash or a power cut at any step leaves the old state or the
// new one, never a mix, and a trial the agent did not live to judge is rolled back at the next
// start.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace postwatch::agent {

// Which bundles make what the agent runs: the one whose config overlay and the one whose
// catalogue are in force (0: the board's own file).
struct BundleVersions {
  std::uint64_t config = 0;
  std::uint64_t catalogue = 0;
  bool operator==(const BundleVersions&) const = default;
};

// What happened to the last bundle the agent looked at, as its birth and heartbeat report it.
struct BundleOutcome {
  enum class Kind { None, Applied, Refused, RolledBack };
  Kind kind = Kind::None;
  std::uint64_t version = 0;
  std::string reason;  // Refused, RolledBack: why, one line
  std::int64_t at_ms = 0;
};
std::string_view to_string(BundleOutcome::Kind kind);

struct BundleTrial {
  std::uint64_t version = 0;
  std::int64_t deadline_ms = 0;  // wall clock: health by then, or roll back
  std::int64_t pid = 0;          // the process that started it, and in which boot: another one
  std::string boot_id;           // finding it means the trial was cut short
};

struct BundleState {
  BundleVersions current, previous;
  std::optional<BundleTrial> trial;
  std::uint64_t newest_tried = 0;  // no bundle at or below this is tried again (replays, failures)
  BundleOutcome last;
};

class BundleStore {
 public:
  // Creates `dir` (0700) if missing and reads state.json; throws std::runtime_error naming the
  // file when it cannot. A missing state.json is the initial state.
  explicit BundleStore(std::filesystem::path dir);

  const BundleState& state() const { return state_; }
  // The signed text of bundle `version` as received; empty when it is not held.
  std::string bundle_text(std::uint64_t version) const;

  // Step 1: writes and syncs the bundle's file. Nothing is in force yet.
  void keep(std::uint64_t version, std::string_view signed_text);
  // Step 2, one rename: `next` in force on trial until `deadline_ms`; what ran before becomes
  // `previous`.
  void begin_trial(std::uint64_t version, const BundleVersions& next, std::int64_t deadline_ms, std::int64_t now_ms);
  // The trial showed health: it stays, and bundles no longer needed are deleted.
  void commit_trial(std::int64_t now_ms);
  // The trial failed: `previous` goes back in force.
  void roll_back(const std::string& reason, std::int64_t now_ms);
  // A bundle that was not tried (it failed validation): remembered so it is not tried again.
  void refuse(std::uint64_t version, const std::string& reason, std::int64_t now_ms);
  // At start: a trial started by another process or in another boot was cut short (a crash,
  // a power cut, a restart) and is rolled back. True when it did that.
  bool recover(std::int64_t now_ms);

  // This process's identity as a trial records it.
  static std::int64_t this_pid();
  static std::string this_boot_id();

  // Tests: called after each step's write with the step's name ("keep", "begin_trial",
  // "commit_trial", "roll_back"), so a test can kill the process right there.
  std::function<void(std::string_view step)> after_step;

 private:
  void save(const BundleState& next);  // write, fsync, rename, fsync the directory
  void prune();
  std::filesystem::path dir_;
  BundleState state_;
};

}  // namespace postwatch::agent
