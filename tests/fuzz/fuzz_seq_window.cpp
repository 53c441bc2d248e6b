// libFuzzer: the aggregator's dedupe window against a plain model of every seq seen
// (tests/support/seq_window_model.hpp): a seq is never counted twice, never refused or
// confirmed to the agent unseen, the runs stay bounded and a snapshot restores exactly.
#include "support/seq_window_model.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto broken = postwatch::test::run_seq_window_ops(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "SeqWindow: %s\n", broken.c_str());
    __builtin_trap();
  }
  return 0;
}
