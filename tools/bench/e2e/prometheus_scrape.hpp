// The aggregator's ingest-latency histogram scraped from /metrics, and a percentile's bucket
// bound between two scrapes.
#pragma once

#include "e2e/common.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace postwatch::bench::e2e {

// postwatch_ingest_latency_seconds from /metrics, when the aggregator serves it.
struct Histogram {
  bool present = false;
  std::vector<std::pair<double, double>> buckets;  // le (s), cumulative count
  double count = 0;
};

inline Histogram fetch_latency_histogram(unsigned short port) {
  Histogram h;
  auto r = test::http_get(port, "/metrics");
  if (r.status != 200) return h;
  std::istringstream in(r.body);
  const std::string prefix = "postwatch_ingest_latency_seconds_bucket{";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) {
      auto le = line.find("le=\"");
      auto close = line.find('"', le + 4);
      auto space = line.rfind(' ');
      if (le == std::string::npos || close == std::string::npos || space == std::string::npos) continue;
      std::string bound = line.substr(le + 4, close - le - 4);
      double b = bound == "+Inf" ? INFINITY : std::strtod(bound.c_str(), nullptr);
      h.buckets.emplace_back(b, std::strtod(line.c_str() + space + 1, nullptr));
      h.present = true;
    } else if (line.rfind("postwatch_ingest_latency_seconds_count", 0) == 0) {
      h.count = std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
    }
  }
  return h;
}

// Upper bound (s) of the bucket holding the p-th percentile of (after - before).
inline double histogram_quantile_bound(const Histogram& before, const Histogram& after, double p) {
  if (!after.present || after.buckets.size() != before.buckets.size()) return NAN;
  const double total = after.buckets.back().second - before.buckets.back().second;
  if (total <= 0) return NAN;
  for (std::size_t i = 0; i < after.buckets.size(); ++i)
    if (after.buckets[i].second - before.buckets[i].second >= p / 100.0 * total) return after.buckets[i].first;
  return INFINITY;
}

}  // namespace postwatch::bench::e2e
