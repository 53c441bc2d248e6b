#include "feed/metrics.hpp"

#include <fmt/format.h>

#include <cmath>

namespace postwatch::aggregator {

void LatencyHistogram::observe_ms(std::int64_t ms) {
  if (ms < 0) ms = 0;
  std::size_t i = 0;
  while (i < kBoundsUs.size() && ms * 1000 > kBoundsUs[i]) ++i;
  buckets_[i] += 1;
  count_ += 1;
  sum_ms_ += ms;
}

std::uint64_t LatencyHistogram::cumulative(std::size_t i) const {
  std::uint64_t n = 0;
  for (std::size_t k = 0; k <= i && k < buckets_.size(); ++k) n += buckets_[k];
  return n;
}

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void MetricsText::sample(std::string_view name, std::string_view labels, double value) {
  std::string v;
  if (std::isnan(value))
    v = "NaN";
  else if (std::isinf(value))
    v = value > 0 ? "+Inf" : "-Inf";
  else
    v = fmt::format("{}", value);
  if (labels.empty())
    fmt::format_to(std::back_inserter(out_), "{} {}\n", name, v);
  else
    fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, v);
}

void MetricsText::sample(std::string_view name, std::string_view labels, std::uint64_t value) {
  if (labels.empty())
    fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
  else
    fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
}

void MetricsText::histogram(std::string_view name, std::string_view help, const LatencyHistogram& h) {
  family(name, "histogram", help);
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < LatencyHistogram::kBoundsUs.size(); ++i)
    sample(bucket, label("le", fmt::format("{}", static_cast<double>(LatencyHistogram::kBoundsUs[i]) / 1e6)),
           h.cumulative(i));
  sample(bucket, label("le", "+Inf"), h.cumulative(LatencyHistogram::kBoundsUs.size()));
  sample(std::string(name) + "_sum", "", h.sum_seconds());
  sample(std::string(name) + "_count", "", h.count());
}

std::string MetricsText::label(std::string_view name, std::string_view value) {
  std::string out(name);
  out += "=\"";
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  out += '"';
  return out;
}

}  // namespace postwatch::aggregator
