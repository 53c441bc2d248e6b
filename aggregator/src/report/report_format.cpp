#include "report/report_format.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace postwatch::aggregator::report {

namespace {

std::tm utc(std::int64_t ms) {
  // Floor, so a moment before 1970 still lands in its own day.
  const auto seconds = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return tm;
}

}  // namespace

std::string date_text(std::int64_t ms) {
  const auto tm = utc(ms);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

std::string minute_text(std::int64_t ms) {
  const auto tm = utc(ms);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min);
  return buf;
}

std::string duration_text(std::int64_t ms) {
  if (ms <= 0) return "0";
  const auto minutes = ms / 60'000;
  if (minutes == 0) return "< 1 min";
  const auto days = minutes / (24 * 60), hours = minutes / 60 % 24, mins = minutes % 60;
  if (days > 0) return std::to_string(days) + " d" + (hours ? " " + std::to_string(hours) + " h" : "");
  if (hours > 0) return std::to_string(hours) + " h" + (mins ? " " + std::to_string(mins) + " min" : "");
  return std::to_string(mins) + " min";
}

std::string number_text(std::optional<double> v, int decimals) {
  if (!v || !std::isfinite(*v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, *v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string csv_number(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", *v);
  std::string s = buf;
  return s == "-0" ? "0" : s;
}

std::string percent_text(std::int64_t part, std::int64_t whole) {
  if (whole <= 0) return "–";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

std::string html_escaped(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}


}  // namespace postwatch::aggregator::report
