#include "report/report_svg.hpp"

#include "report/report_format.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace postwatch::aggregator::report {

namespace {

// Coordinates with one decimal: enough for print, and the same text every time.
std::string co(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// The chart's box, in SVG user units (≈ px): the plot, with room for labels left and below.
constexpr double kWidth = 360, kHeight = 130;
constexpr double kLeft = 8, kRight = 300, kTop = 10, kBottom = 104;

struct Scale {
  std::int64_t t0 = 0, t1 = 1;
  double v0 = 0, v1 = 1;
  double x(std::int64_t t) const {
    return kLeft + static_cast<double>(t - t0) / static_cast<double>(t1 - t0) * (kRight - kLeft);
  }
  double y(double v) const { return kBottom - (v - v0) / (v1 - v0) * (kBottom - kTop); }
};

std::string label(double x, double y, const std::string& text, const char* anchor = "start") {
  return "<text x=\"" + co(x) + "\" y=\"" + co(y) + "\" text-anchor=\"" + anchor +
         "\" font-size=\"9\" fill=\"#1d2733\">" + html_escaped(text) + "</text>";
}

}  // namespace

std::string_view state_colour(BoardState s) {
  switch (s) {
    case BoardState::Green: return "#2e7d32";
    case BoardState::Amber: return "#e8a800";
    case BoardState::Red: return "#c62828";
    case BoardState::Unknown: return "#7a8594";
    case BoardState::Unrecorded: break;
  }
  return "#e3e7ec";
}

std::string target_chart_svg(const TargetAssessment& a, std::int64_t from_ms, std::int64_t to_ms) {
  const auto& t = *a.target;
  std::vector<std::int64_t> times{from_ms, to_ms};
  std::vector<double> values;
  for (const auto& r : a.readings) {
    times.push_back(r.at_ms);
    values.push_back(r.value);
  }
  if (t.baseline) {
    times.push_back(t.baseline->at_ms);
    values.push_back(t.baseline->value);
  }
  if (t.target) values.push_back(*t.target);
  if (t.by_ms) times.push_back(t.by_ms);
  for (const auto& m : t.milestones) {
    times.push_back(m.at_ms);
    values.push_back(m.value);
  }
  Scale s;
  s.t0 = *std::min_element(times.begin(), times.end());
  s.t1 = std::max(*std::max_element(times.begin(), times.end()), s.t0 + 1);
  if (!values.empty()) {
    s.v0 = *std::min_element(values.begin(), values.end());
    s.v1 = *std::max_element(values.begin(), values.end());
  }
  const double pad = s.v1 > s.v0 ? (s.v1 - s.v0) * 0.15 : (s.v0 != 0 ? std::abs(s.v0) * 0.1 : 1);
  s.v0 -= pad;
  s.v1 += pad;

  std::string out = "<svg class=\"chart\" viewBox=\"0 0 " + co(kWidth) + " " + co(kHeight) + "\" width=\"" +
                    co(kWidth) + "\" height=\"" + co(kHeight) + "\" role=\"img\" aria-label=\"readings of " +
                    html_escaped(t.id) + "\"><title>" + html_escaped(t.commitment) + "</title>";
  // The report's period: where the trend is measured.
  out += "<rect x=\"" + co(s.x(from_ms)) + "\" y=\"" + co(kTop) + "\" width=\"" + co(s.x(to_ms) - s.x(from_ms)) +
         "\" height=\"" + co(kBottom - kTop) + "\" fill=\"#eef2f6\"/>";
  out += "<line x1=\"" + co(kLeft) + "\" y1=\"" + co(kBottom) + "\" x2=\"" + co(kRight) + "\" y2=\"" + co(kBottom) +
         "\" stroke=\"#9aa5b1\" stroke-width=\"1\"/>";
  if (t.target) {
    const double y = s.y(*t.target);
    out += "<line x1=\"" + co(kLeft) + "\" y1=\"" + co(y) + "\" x2=\"" + co(kRight) + "\" y2=\"" + co(y) +
           "\" stroke=\"#1d2733\" stroke-width=\"1\" stroke-dasharray=\"5 3\"/>";
    out += label(kRight + 4, y + 3, "target " + number_text(t.target));
    const FigureReading* start = t.baseline ? &*t.baseline : (a.readings.empty() ? nullptr : &a.readings.front());
    if (start && t.by_ms)
      out += "<line x1=\"" + co(s.x(start->at_ms)) + "\" y1=\"" + co(s.y(start->value)) + "\" x2=\"" +
             co(s.x(t.by_ms)) + "\" y2=\"" + co(y) +
             "\" stroke=\"#7a8594\" stroke-width=\"1\" stroke-dasharray=\"2 2\"/>";
  }
  for (const auto& m : t.milestones)
    out += "<rect x=\"" + co(s.x(m.at_ms) - 2.5) + "\" y=\"" + co(s.y(m.value) - 2.5) +
           "\" width=\"5\" height=\"5\" fill=\"none\" stroke=\"#7a8594\"/>";
  if (t.baseline)
    out += "<circle cx=\"" + co(s.x(t.baseline->at_ms)) + "\" cy=\"" + co(s.y(t.baseline->value)) +
           "\" r=\"3.5\" fill=\"#ffffff\" stroke=\"#1d2733\" stroke-width=\"1.2\"/>";
  if (a.readings.size() > 1) {
    out += "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\" points=\"";
    for (std::size_t i = 0; i < a.readings.size(); ++i)
      out += (i ? " " : "") + co(s.x(a.readings[i].at_ms)) + "," + co(s.y(a.readings[i].value));
    out += "\"/>";
  }
  for (const auto& r : a.readings)
    out += "<circle cx=\"" + co(s.x(r.at_ms)) + "\" cy=\"" + co(s.y(r.value)) + "\" r=\"2.5\" fill=\"#1565c0\"/>";
  if (!a.readings.empty()) {
    const auto& last = a.readings.back();
    out += label(s.x(last.at_ms), s.y(last.value) - 6, number_text(last.value), "middle");
  }
  out += label(kLeft, kBottom + 13, date_text(s.t0));
  out += label(kRight, kBottom + 13, date_text(s.t1), "end");
  if (a.readings.empty()) out += label((kLeft + kRight) / 2, (kTop + kBottom) / 2, "no readings yet", "middle");
  return out + "</svg>";
}

std::string status_strip_svg(const GoalHistorySummary& history, int goal) {
  std::string out = "<svg class=\"strip\" viewBox=\"0 0 " + std::to_string(history.strip.size()) +
                    " 10\" preserveAspectRatio=\"none\" width=\"100%\" height=\"14\" role=\"img\" "
                    "aria-label=\"status of goal " +
                    std::to_string(goal) + " over the period\">";
  for (std::size_t i = 0; i < history.strip.size();) {
    std::size_t j = i;
    while (j < history.strip.size() && history.strip[j] == history.strip[i]) ++j;
    out += "<rect x=\"" + std::to_string(i) + "\" y=\"0\" width=\"" + std::to_string(j - i) +
           "\" height=\"10\" fill=\"" + std::string(state_colour(history.strip[i])) + "\"/>";
    i = j;
  }
  return out + "</svg>";
}

}  // namespace postwatch::aggregator::report
