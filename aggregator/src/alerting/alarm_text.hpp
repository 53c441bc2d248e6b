// How an alarm change reads to a person, for the channels that write text (Alertmanager's
// annotations, an email's subject and body) rather than pass the alarm's JSON on. Each takes
// one element of a notification's "alarms": the alarm as the API shows it, its "event", and
// for these channels "facts" (pillar, posts, regions) from routing.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace postwatch::aggregator {

// "goal 7 (security)" or "post bamako": what the alarm is about.
std::string alarm_subject(const nlohmann::json& change);
// "RED goal alarm: goal 7 (security)".
std::string alarm_summary(const nlohmann::json& change);
// Its causes, one per line: "bamako: terrorism_threat_level = 5 (red)"; empty when none.
std::string alarm_causes_text(const nlohmann::json& change);
// The alarm's facts as "name: value" lines (event, level, state, times, posts, regions,
// acknowledgement), for an email body.
std::string alarm_facts_text(const nlohmann::json& change);

// 2024-06-10T06:13:20.000Z
std::string rfc3339_utc(std::int64_t unix_ms);
// Mon, 10 Jun 2024 06:13:20 +0000 (RFC 5322 section 3.3)
std::string rfc5322_date(std::int64_t unix_ms);

}  // namespace postwatch::aggregator
