#include "feed/figure_registry.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

std::string_view to_string(MetricKind k) { return k == MetricKind::Gauge ? "gauge" : "counter"; }

FigureRegistry::Family& FigureRegistry::Family::figure(std::string stats_path, std::string labels, Getter get,
                                                       std::uint32_t per_metric_unit) {
  registry_.figures_.push_back({std::move(stats_path), std::move(labels), std::move(get), per_metric_unit});
  registry_.families_[index_].blocks.push_back({registry_.figures_.size() - 1, {}});
  return *this;
}

FigureRegistry::Family& FigureRegistry::Family::sample(std::string labels, Getter get) {
  return figure({}, std::move(labels), std::move(get));
}

FigureRegistry::Family& FigureRegistry::Family::samples(Samples fn) {
  registry_.families_[index_].blocks.push_back({0, std::move(fn)});
  return *this;
}

FigureRegistry::Family FigureRegistry::family(std::string_view name, MetricKind kind, std::string_view help) {
  if (auto it = family_index_.find(name); it != family_index_.end()) return Family(*this, it->second);
  families_.push_back({std::string(name), std::string(help), kind, nullptr, {}});
  family_index_.emplace(std::string(name), families_.size() - 1);
  return Family(*this, families_.size() - 1);
}

void FigureRegistry::stats_only(std::string stats_path, Getter get) {
  figures_.push_back({std::move(stats_path), {}, std::move(get), 1});
}

void FigureRegistry::histogram(std::string_view name, std::string_view help, const LatencyHistogram& h) {
  families_.push_back({std::string(name), std::string(help), MetricKind::Counter, &h, {}});
  family_index_.emplace(std::string(name), families_.size() - 1);
}

json FigureRegistry::stats() const {
  json out = json::object();
  for (const Figure& f : figures_) {
    if (f.stats_path.empty()) continue;
    std::visit([&](auto v) { out[json::json_pointer("/" + f.stats_path)] = v; }, f.get().get());
  }
  return out;
}

void FigureRegistry::write_metrics(MetricsText& m) const {
  for (const FamilyEntry& fam : families_) {
    if (fam.histogram) {
      m.histogram(fam.name, fam.help, *fam.histogram);
      continue;
    }
    m.family(fam.name, to_string(fam.kind), fam.help);
    auto emit = [&](std::string_view labels, FigureValue value) {
      std::visit([&](auto v) { m.sample(fam.name, labels, v); }, value.get());
    };
    for (const Block& b : fam.blocks) {
      if (b.computed) {
        b.computed(emit);
        continue;
      }
      const Figure& f = figures_[b.figure];
      FigureValue value = f.get();
      if (f.per_metric_unit != 1)  // a whole count of the stats' unit, as a fraction of the metric's
        value = std::visit([](auto v) { return static_cast<double>(v); }, value.get()) /
                static_cast<double>(f.per_metric_unit);
      emit(f.labels, value);
    }
  }
}

}  // namespace postwatch::aggregator
