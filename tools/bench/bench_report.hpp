// The figures a benchmark prints (an aligned table by section, some figures side by side) and
// writes (--json, read by tools/bench/run): one table for every benchmark that has sections.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace postwatch::bench {

class BenchReport {
 public:
  using ojson = nlohmann::ordered_json;

  void section(const std::string& key, const std::string& title) {
    key_ = key;
    rows_.push_back({title, "", ""});
    j_[key_] = ojson::object();
  }
  void add(const std::string& key, const std::string& label, double v, const std::string& unit, int precision = 0) {
    rows_.push_back({"  " + label, number(v, precision), unit});
    j_[key_][key] = std::isfinite(v) ? ojson(v) : ojson(nullptr);
  }
  void text(const std::string& key, const std::string& label, const std::string& v) {
    rows_.push_back({"  " + label, v, ""});
    j_[key_][key] = v;
  }
  // Figures side by side, one per column (the columns' names in a row added with `columns`).
  void add_columns(const std::string& key, const std::string& label, const std::vector<std::string>& cols,
                   const std::vector<double>& v, const std::string& unit, int precision = 0) {
    std::string text;
    for (std::size_t i = 0; i < v.size(); ++i) {
      text += pad(number(v[i], precision));
      j_[key_][cols[i] + "_" + key] = std::isfinite(v[i]) ? ojson(v[i]) : ojson(nullptr);
    }
    rows_.push_back({"  " + label, text, unit, true});
  }
  void columns(const std::vector<std::string>& names) {
    std::string text;
    for (const auto& n : names) text += pad(n);
    rows_.push_back({"", text, "", true});
  }
  void config(const std::string& key, const ojson& v) { j_["config"][key] = v; }
  void print(std::ostream& out) const {
    std::size_t w0 = 0, w1 = 0;
    for (const auto& r : rows_) {
      if (r.value.empty()) continue;  // a section title
      w0 = std::max(w0, r.label.size());
      if (!r.columns) w1 = std::max(w1, r.value.size());
    }
    for (const auto& r : rows_) {
      if (r.value.empty()) {
        out << "\n" << r.label << "\n";
        continue;
      }
      out << r.label << std::string(w0 + 2 - r.label.size(), ' ')
          << std::string(r.columns ? 0 : w1 - std::min(w1, r.value.size()), ' ') << r.value
          << (r.unit.empty() ? "" : " " + r.unit) << "\n";
    }
  }
  const ojson& json() const { return j_; }

 private:
  static std::string pad(const std::string& s) { return std::string(s.size() < 18 ? 18 - s.size() : 1, ' ') + s; }
  // 1234567.8 -> 1,234,567.8
  static std::string number(double v, int precision) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    std::string s(buf);
    auto dot = s.find('.');
    std::string whole = s.substr(0, dot), frac = dot == std::string::npos ? "" : s.substr(dot);
    bool neg = !whole.empty() && whole[0] == '-';
    if (neg) whole.erase(0, 1);
    for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3) whole.insert(static_cast<std::size_t>(i), ",");
    return (neg ? "-" : "") + whole + frac;
  }
  struct Row {
    std::string label, value, unit;
    bool columns = false;  // figures side by side (add_columns): not aligned with the single ones
  };
  std::vector<Row> rows_;
  ojson j_ = ojson::object();
  std::string key_;
};

}  // namespace postwatch::bench
