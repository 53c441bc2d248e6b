// The figures postwatch-bench-agent prints and writes (--json): the benches' one table.
#pragma once

#include "bench_report.hpp"

namespace postwatch::bench::agent_drain {

using Report = BenchReport;

}  // namespace postwatch::bench::agent_drain
