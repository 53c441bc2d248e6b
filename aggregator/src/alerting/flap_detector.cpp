#include "alerting/flap_detector.hpp"

namespace postwatch::aggregator {

FlapDetector::Opening FlapDetector::opened(const std::string& subject, std::int64_t now_ms) {
  if (config_.openings == 0) return Opening::Steady;
  Subject& s = subjects_[subject];
  s.opened_at_ms.push_back(now_ms);
  while (now_ms - s.opened_at_ms.front() >= config_.window_ms) s.opened_at_ms.pop_front();
  if (s.flapping) return Opening::StillFlapping;
  if (s.opened_at_ms.size() <= config_.openings) return Opening::Steady;
  s.flapping = true;
  return Opening::StartsFlapping;
}

bool FlapDetector::flapping(const std::string& subject) const {
  auto it = subjects_.find(subject);
  return it != subjects_.end() && it->second.flapping;
}

std::size_t FlapDetector::openings(const std::string& subject) const {
  auto it = subjects_.find(subject);
  return it == subjects_.end() ? 0 : it->second.opened_at_ms.size();
}

std::vector<std::string> FlapDetector::ended(std::int64_t now_ms) {
  std::vector<std::string> out;
  for (auto it = subjects_.begin(); it != subjects_.end();) {
    Subject& s = it->second;
    if (!s.opened_at_ms.empty() && now_ms - s.opened_at_ms.back() >= config_.window_ms) {
      if (s.flapping) out.push_back(it->first);
      it = subjects_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace postwatch::aggregator
