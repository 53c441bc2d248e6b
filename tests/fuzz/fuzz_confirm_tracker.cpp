// libFuzzer: the agent's ConfirmTracker against a plain model of its spool ([first, next)), its
// main lane's cursor and what the aggregator confirmed: nothing is released that was not
// confirmed, a confirmation of seqs the spool never issued is refused (and stays refused), the
// lowest resend request wins and never moves the cursor below the spool or forward, and a stall
// resend asks only for seqs the spool holds and the broker acknowledged.
#include "postwatch/agent/confirm_tracker.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

namespace {

using postwatch::agent::ConfirmTracker;
using namespace std::chrono_literals;

class Model {
 public:
  std::string step(std::uint8_t op, std::uint8_t arg) {
    switch (op % 8) {
      case 0: next_ += 1 + arg % 16; break;  // the spool accepts events
      case 1:                                // the main lane sends, the broker acknowledges
        cursor_ = std::min(next_, cursor_ + 1 + arg % 16);
        sent_through_ = std::max(sent_through_, cursor_ - 1);
        break;
      case 2: return confirm(arg);
      case 3: return apply();
      case 4: {
        const std::uint64_t seq = first_ + arg % 32;
        const std::uint64_t from = tracker_.request_resend_within(seq, first_, next_);
        if (from != 0) {
          if (from < first_ || from >= next_) return "resend_within outside the spool";
          request(from);
        } else if (std::max(seq, first_) < next_) {
          return "resend_within refused a seq the spool holds";
        }
        break;
      }
      case 5:  // a reconnect: the main lane starts again from the spool's first seq
        tracker_.reconnected();
        cursor_ = first_;
        resend_ = 0;
        break;
      case 6: return stall(arg);
      case 7:  // a restart: the spool keeps what it held, the tracker starts empty
        tracker_ = ConfirmTracker(15s, 300s);
        cursor_ = first_;
        sent_through_ = first_ - 1;
        resend_ = 0;
        confirmed_ = 0;
        refused_ = 0;
        break;
    }
    return check();
  }

 private:
  std::string confirm(std::uint8_t arg) {
    const std::uint64_t issued = next_ - 1;
    // Around what was issued, now and then far beyond it (an old spool's confirmation).
    std::uint64_t through = (arg & 0x80) ? issued + (arg & 0x7f) : (issued > (arg & 0x1f) ? issued - (arg & 0x1f) : 0);
    if (refused_ != 0 && (arg & 0x60) == 0x60) through = refused_;
    if (through == 0) return check();
    const std::uint64_t resend = (arg & 0x40) ? first_ + arg % 8 : 0;
    const bool should_refuse = through > issued || (refused_ != 0 && through == refused_);
    auto c = tracker_.confirmed(through, resend, issued);
    if (c.refused != should_refuse) return "confirmation through " + std::to_string(through) + " wrongly judged";
    if (c.first_refusal != (should_refuse && refused_ == 0)) return "first refusal misreported";
    if (should_refuse) {
      if (through > issued) refused_ = through;
      if (c.resend_requested) return "a refused confirmation's resend request was taken";
    } else {
      confirmed_ = std::max(confirmed_, through);
      if (c.resend_requested != (resend != 0)) return "resend request lost";
      request(resend);
    }
    return check();
  }

  std::string apply() {
    if (auto release = tracker_.releasable(first_, next_)) {
      if (*release < first_ || *release >= next_) return "release outside the spool";
      if (*release > confirmed_) return "released seq " + std::to_string(*release) + " never confirmed";
      first_ = *release + 1;
      cursor_ = std::max(cursor_, first_);
    }
    const std::uint64_t cursor_before = cursor_;
    auto r = tracker_.take_resend(cursor_, first_);
    const std::uint64_t asked = std::exchange(resend_, 0);
    if (r) {
      if (r->from != asked)
        return "resend from " + std::to_string(r->from) + ", the lowest asked was " + std::to_string(asked);
      if (r->from >= cursor_before) return "resend of seqs not yet sent";
      if (r->cursor < first_ || r->cursor > cursor_before) return "resend cursor out of bounds";
      cursor_ = r->cursor;
    } else if (asked != 0 && asked < cursor_before) {
      return "resend request from " + std::to_string(asked) + " lost";
    }
    return check();
  }

  std::string stall(std::uint8_t arg) {
    now_ += std::chrono::seconds(arg);
    const std::uint64_t window = 1 + arg % 64;
    auto r = tracker_.stalled(now_, first_, next_, sent_through_, window);
    if (!r) return check();
    if (sent_through_ < first_ || first_ >= next_) return "stall with nothing acknowledged held";
    if (r->from < first_ || r->from > sent_through_) return "stall resend outside what was acknowledged";
    if (r->waited < 15s) return "stall sooner than its first wait";
    request(r->from);
    return check();
  }

  void request(std::uint64_t from) {
    if (from != 0 && (resend_ == 0 || from < resend_)) resend_ = from;
  }

  std::string check() const {
    if (tracker_.confirmed_through() != confirmed_) return "confirmed_through differs from the model";
    const bool releasable = confirmed_ >= first_ && confirmed_ < next_;
    if (tracker_.pending(first_, next_) != (releasable || resend_ != 0)) return "pending differs from the model";
    return "";
  }

  ConfirmTracker tracker_{15s, 300s};
  std::uint64_t first_ = 1, next_ = 1, cursor_ = 1, sent_through_ = 0;
  std::uint64_t confirmed_ = 0, refused_ = 0, resend_ = 0;
  ConfirmTracker::Clock::time_point now_{std::chrono::hours(1)};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Model model;
  for (std::size_t i = 0; i + 1 < size; i += 2) {
    auto broken = model.step(data[i], data[i + 1]);
    if (!broken.empty()) {
      std::fprintf(stderr, "ConfirmTracker: %s (op %zu)\n", broken.c_str(), i / 2);
      __builtin_trap();
    }
  }
  return 0;
}
