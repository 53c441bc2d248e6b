// `postwatch-bench-e2e collectd`: collectd's mqtt plugin against postwatch-agent run, both fed
// the same events per second: RSS and CPU idle and busy, and what reached the broker.
#pragma once

namespace postwatch::bench::e2e {

int collectd_main(int argc, char** argv);

}  // namespace postwatch::bench::e2e
