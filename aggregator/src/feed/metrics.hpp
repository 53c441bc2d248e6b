// Prometheus metrics (/metrics, text exposition format 0.0.4): a latency histogram
// fed by ingest, and a writer for the exposition text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace postwatch::aggregator {

// Event observed_at -> applied, in seconds; buckets from 1 ms to 60 s. Observed times
// are whole milliseconds, so nothing finer than 1 ms can be told apart.
class LatencyHistogram {
 public:
  static constexpr std::array<std::int64_t, 15> kBoundsUs{1'000,    2'500,    5'000,      10'000,     25'000,
                                                          50'000,   100'000,  250'000,    500'000,    1000'000,
                                                          2500'000, 5000'000, 10'000'000, 30'000'000, 60'000'000};
  // Negative latencies (an agent clock slightly ahead of ours) count as 0.
  void observe_ms(std::int64_t ms);
  // Cumulative count of observations <= kBoundsUs[i]; i == kBoundsUs.size() is +Inf.
  std::uint64_t cumulative(std::size_t i) const;
  std::uint64_t count() const { return count_; }
  double sum_seconds() const { return static_cast<double>(sum_ms_) / 1000.0; }

 private:
  std::array<std::uint64_t, kBoundsUs.size() + 1> buckets_{};  // per bucket, not cumulative
  std::uint64_t count_ = 0;
  std::int64_t sum_ms_ = 0;
};

// Builds exposition text; each family's HELP and TYPE come once, before its samples.
class MetricsText {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  // `labels` is the inside of {...}, already escaped (see label()), or empty.
  void sample(std::string_view name, std::string_view labels, double value);
  void sample(std::string_view name, std::string_view labels, std::uint64_t value);
  void histogram(std::string_view name, std::string_view help, const LatencyHistogram& h);
  // name="value" with the value escaped as the format requires.
  static std::string label(std::string_view name, std::string_view value);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

}  // namespace postwatch::aggregator
