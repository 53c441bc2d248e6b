// The figures postwatch-bench-agent prints (an aligned table, some side by side) and writes (--json).
#pragma once

#include "agent_drain/common.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace postwatch::bench::agent_drain {

// ---------------------------------------------------------------- results

class Report {
 public:
  void section(const std::string& key, const std::string& title) {
    key_ = key;
    rows_.push_back({title, "", ""});
  }
  void add(const std::string& key, const std::string& label, double v, const std::string& unit, int precision = 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    rows_.push_back({"  " + label, group(buf), unit});
    j_[key_][key] = v;
  }
  void add_text(const std::string& key, const std::string& label, const std::string& v) {
    rows_.push_back({"  " + label, v, ""});
    j_[key_][key] = v;
  }
  // Figures side by side, one per column (the columns' names in a row added with `columns`).
  void add_columns(const std::string& key, const std::string& label, const std::vector<std::string>& cols,
                   const std::vector<double>& v, const std::string& unit, int precision = 0) {
    std::string text;
    for (std::size_t i = 0; i < v.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.*f", precision, v[i]);
      text += pad(group(buf));
      j_[key_][cols[i] + "_" + key] = v[i];
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
      if (r.value.empty() && r.unit.empty()) continue;  // a section title
      w0 = std::max(w0, r.label.size());
      if (!r.columns) w1 = std::max(w1, r.value.size());
    }
    for (const auto& r : rows_) {
      if (r.value.empty() && r.unit.empty()) {
        out << r.label << "\n";
        continue;
      }
      out << r.label << std::string(w0 - r.label.size() + 2, ' ')
          << std::string(r.columns ? 0 : w1 - r.value.size(), ' ') << r.value << "  " << r.unit << "\n";
    }
  }
  const ojson& json() const { return j_; }

 private:
  static std::string pad(const std::string& s) { return std::string(s.size() < 18 ? 18 - s.size() : 1, ' ') + s; }
  // 1234567.8 -> 1,234,567.8
  // (Built front to back: GCC 12 warns, wrongly, about string::insert inlined here: -Wrestrict.)
  static std::string group(const std::string& s) {
    auto dot = s.find('.');
    std::size_t end = dot == std::string::npos ? s.size() : dot;
    std::size_t begin = (!s.empty() && s[0] == '-') ? 1 : 0;
    std::string out = s.substr(0, begin);
    for (std::size_t i = begin; i < end; ++i) {
      out += s[i];
      if (i + 1 < end && (end - i - 1) % 3 == 0) out += ',';
    }
    return out + s.substr(end);
  }
  struct Row {
    std::string label, value, unit;
    bool columns = false;  // figures side by side (add_columns): not aligned with the single ones
  };
  std::vector<Row> rows_;
  ojson j_ = ojson::object();
  std::string key_;
};

}  // namespace postwatch::bench::agent_drain
