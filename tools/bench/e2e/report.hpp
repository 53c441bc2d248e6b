// The figures postwatch-bench-e2e prints and writes (--json): the benches' one table, and the
// percentiles its latency figures use.
#pragma once

#include "bench_report.hpp"
#include "e2e/common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace postwatch::bench::e2e {

using Report = BenchReport;

// Nearest-rank percentile of sorted values.
inline double percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return NAN;
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1]);
}

}  // namespace postwatch::bench::e2e
