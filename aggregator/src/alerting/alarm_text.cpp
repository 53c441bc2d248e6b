#include "alerting/alarm_text.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

std::string str(const json& j, const char* field) {
  if (!j.contains(field) || j[field].is_null()) return "";
  return j[field].is_string() ? j[field].get<std::string>() : j[field].dump();
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string joined(const json& list) {
  std::string out;
  for (const auto& v : list) out += (out.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

std::tm utc(std::int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

std::string alarm_subject(const json& c) {
  if (c.value("kind", "") == "goal") {
    std::string pillar = c.contains("facts") ? str(c["facts"], "pillar") : "";
    return "goal " + str(c, "goal") + (pillar.empty() ? "" : " (" + pillar + ")");
  }
  return "post " + str(c, "post");
}

std::string alarm_summary(const json& c) {
  return upper(str(c, "level")) + " " + str(c, "kind") + " alarm: " + alarm_subject(c);
}

std::string alarm_causes_text(const json& c) {
  std::string out;
  for (const auto& cause : c.value("causes", json::array()))
    out += str(cause, "post") + ": " + str(cause, "indicator") + " = " + str(cause, "value") + " (" +
           str(cause, "status") + ")\n";
  return out;
}

std::string alarm_facts_text(const json& c) {
  std::ostringstream out;
  out << "Event:     " << str(c, "event") << "\n";
  if (c.contains("escalation") && c["escalation"].is_object())
    out << "Escalation: step " << str(c["escalation"], "step") << " of " << str(c["escalation"], "of")
        << ": nobody acknowledged it within " << str(c["escalation"], "after_s") << " s\n";
  out << "Alarm:     " << str(c, "id") << " (" << str(c, "kind") << ")\n";
  out << "Level:     " << str(c, "level") << " (worst " << str(c, "worst_level") << ")\n";
  out << "State:     " << str(c, "state") << "\n";
  if (c.contains("raised_at_ms") && c["raised_at_ms"].is_number())
    out << "Raised:    " << rfc5322_date(c["raised_at_ms"].get<std::int64_t>()) << "\n";
  if (c.contains("cleared_at_ms") && c["cleared_at_ms"].is_number())
    out << "Cleared:   " << rfc5322_date(c["cleared_at_ms"].get<std::int64_t>()) << "\n";
  if (c.contains("facts")) {
    const auto& f = c["facts"];
    if (!str(f, "pillar").empty()) out << "Pillar:    " << str(f, "pillar") << "\n";
    if (f.contains("posts") && !f["posts"].empty()) out << "Posts:     " << joined(f["posts"]) << "\n";
    if (f.contains("regions") && !f["regions"].empty()) out << "Regions:   " << joined(f["regions"]) << "\n";
  }
  if (c.value("acknowledged", false) && c.contains("ack"))
    out << "Acknowledged by " << str(c["ack"], "by") << (str(c["ack"], "comment").empty() ? "" : ": ")
        << str(c["ack"], "comment") << "\n";
  return out.str();
}

std::string rfc3339_utc(std::int64_t unix_ms) {
  std::tm tm = utc(unix_ms);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

std::string rfc5322_date(std::int64_t unix_ms) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm = utc(unix_ms);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace postwatch::aggregator
