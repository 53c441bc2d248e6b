// The aggregator's figures, listed once: /api/v1/stats renders them as one JSON object and
// /metrics as Prometheus text (feed/metrics.hpp), so a new counter is one line in the table
// (feed/*_figures.cpp) and shows in both, under the names the table gives it.
#pragma once

#include "feed/metrics.hpp"

#include <nlohmann/json_fwd.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace postwatch::aggregator {

// What a figure reads: a whole number, or a fraction (seconds, scores). JSON keeps the
// difference (3 against 3.0), so a figure keeps the type its source has.
class FigureValue {
 public:
  // Implicit, so a getter returns its source's number as it is.
  template <std::unsigned_integral T>
  FigureValue(T v) : value_(static_cast<std::uint64_t>(v)) {}
  FigureValue(double v) : value_(v) {}
  const std::variant<std::uint64_t, double>& get() const { return value_; }

 private:
  std::variant<std::uint64_t, double> value_;
};

enum class MetricKind { Counter, Gauge };
std::string_view to_string(MetricKind k);

class FigureRegistry {
 public:
  using Getter = std::function<FigureValue()>;
  // A sample of a family computed with the others (one pass over the agents, the alarms):
  // calls emit(labels, value) once per sample, in order.
  using Emit = std::function<void(std::string_view labels, FigureValue value)>;
  using Samples = std::function<void(const Emit& emit)>;

  // One /metrics family; the figures added through it are its samples, in the order added.
  class Family {
   public:
    // A figure of both endpoints: /api/v1/stats at `stats_path` ('/' between the keys of
    // nested objects: "outbound_published/urgent"), /metrics as a sample of this family with
    // `labels` (the inside of {...}, see MetricsText::label; empty: none).
    // `per_metric_unit`: how many of the stats' units make one of the metric's (1000: the
    // stats count milliseconds, the metric seconds).
    Family& figure(std::string stats_path, std::string labels, Getter get, std::uint32_t per_metric_unit = 1);
    // A sample only /metrics shows.
    Family& sample(std::string labels, Getter get);
    // Samples only /metrics shows, computed together when rendered.
    Family& samples(Samples fn);

   private:
    friend class FigureRegistry;
    Family(FigureRegistry& r, std::size_t index) : registry_(r), index_(index) {}
    FigureRegistry& registry_;
    std::size_t index_;
  };

  // Declares a family (its HELP and TYPE come once, before its samples, in the order the
  // families were first declared). Declaring a name again returns the same family.
  Family family(std::string_view name, MetricKind kind, std::string_view help);
  // A figure only /api/v1/stats shows.
  void stats_only(std::string stats_path, Getter get);
  // A histogram family (/metrics only); `h` must outlive the registry.
  void histogram(std::string_view name, std::string_view help, const LatencyHistogram& h);

  // Every figure with a stats_path, as /api/v1/stats shows them.
  nlohmann::json stats() const;
  void write_metrics(MetricsText& m) const;

 private:
  struct Figure {
    std::string stats_path;  // empty: /metrics only
    std::string labels;
    Getter get;
    std::uint32_t per_metric_unit = 1;
  };
  struct Block {  // a family's figures, or computed samples
    std::size_t figure = 0;
    Samples computed;
  };
  struct FamilyEntry {
    std::string name, help;
    MetricKind kind = MetricKind::Counter;
    const LatencyHistogram* histogram = nullptr;
    std::vector<Block> blocks;  // in the order added
  };

  std::vector<Figure> figures_;  // every figure, in the order added
  std::vector<FamilyEntry> families_;
  std::map<std::string, std::size_t, std::less<>> family_index_;
};

}  // namespace postwatch::aggregator
