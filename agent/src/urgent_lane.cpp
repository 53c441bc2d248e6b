#include "postwatch/agent/urgent_lane.hpp"

#include <algorithm>

namespace postwatch::agent {

bool UrgentLane::offer(const IndicatorEvent& e) {
  if (ahead() >= kMaxAhead) {
    overflowed_ += 1;
    return false;
  }
  waiting_.push_back(e);
  return true;
}

std::vector<IndicatorEvent> UrgentLane::take(std::uint64_t horizon, std::size_t max) {
  std::vector<IndicatorEvent> out;
  // Waiting events are in seq order: the ones below the horizon are at the front, and stay for
  // the main lane's next batch (passed() drops them once it has them).
  auto from = std::find_if(waiting_.begin(), waiting_.end(), [&](const IndicatorEvent& e) { return e.seq >= horizon; });
  auto to =
      from + static_cast<std::ptrdiff_t>(std::min<std::size_t>(max, static_cast<std::size_t>(waiting_.end() - from)));
  out.assign(std::make_move_iterator(from), std::make_move_iterator(to));
  waiting_.erase(from, to);
  in_flight_ += out.size();
  return out;
}

void UrgentLane::sent(const std::vector<IndicatorEvent>& batch) {
  in_flight_ -= std::min(in_flight_, batch.size());
  for (const auto& e : batch) sent_.insert(e.seq);
}

void UrgentLane::returned(std::vector<IndicatorEvent> batch) {
  in_flight_ -= std::min(in_flight_, batch.size());
  waiting_.insert(waiting_.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
  std::sort(waiting_.begin(), waiting_.end(),
            [](const IndicatorEvent& a, const IndicatorEvent& b) { return a.seq < b.seq; });
}

void UrgentLane::passed(std::uint64_t cursor) {
  while (!waiting_.empty() && waiting_.front().seq < cursor) waiting_.pop_front();
  sent_.erase(sent_.begin(), sent_.lower_bound(cursor));
}

}  // namespace postwatch::agent
