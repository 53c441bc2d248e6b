// The figures postwatch-bench-e2e prints (an aligned table) and writes (--json), by section.
#pragma once

#include "e2e/common.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace postwatch::bench::e2e {

class Report {
 public:
  void section(const std::string& key, const std::string& title) {
    key_ = key;
    rows_.push_back({title, "", ""});
    j_[key_] = ojson::object();
  }
  void add(const std::string& key, const std::string& label, double v, const std::string& unit, int precision = 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    rows_.push_back({"  " + label, group(buf), unit});
    j_[key_][key] = std::isfinite(v) ? ojson(v) : ojson(nullptr);
  }
  void text(const std::string& key, const std::string& label, const std::string& v) {
    rows_.push_back({"  " + label, v, ""});
    j_[key_][key] = v;
  }
  void config(const std::string& key, const ojson& v) { j_["config"][key] = v; }
  void print(std::ostream& out) const {
    std::size_t w0 = 0, w1 = 0;
    for (const auto& r : rows_)
      if (!r[1].empty()) w0 = std::max(w0, r[0].size()), w1 = std::max(w1, r[1].size());
    for (const auto& r : rows_) {
      if (r[1].empty()) {
        out << "\n" << r[0] << "\n";
        continue;
      }
      out << r[0] << std::string(w0 + 2 - r[0].size(), ' ') << std::string(w1 - std::min(w1, r[1].size()), ' ') << r[1]
          << (r[2].empty() ? "" : " " + r[2]) << "\n";
    }
  }
  const ojson& json() const { return j_; }

 private:
  static std::string group(std::string s) {
    auto dot = s.find('.');
    std::string whole = s.substr(0, dot), frac = dot == std::string::npos ? "" : s.substr(dot);
    bool neg = !whole.empty() && whole[0] == '-';
    if (neg) whole.erase(0, 1);
    for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3) whole.insert(static_cast<std::size_t>(i), ",");
    return (neg ? "-" : "") + whole + frac;
  }
  std::string key_;
  std::vector<std::array<std::string, 3>> rows_;
  ojson j_ = ojson::object();
};

// Nearest-rank percentile of sorted values.
inline double percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return NAN;
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1]);
}

}  // namespace postwatch::bench::e2e
