#include "alerting/alertmanager_channel.hpp"

#include "alerting/alarm_text.hpp"
#include "alerting/curl_support.hpp"

#include <algorithm>
#include <map>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

std::string as_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

json alert_for(const json& c, const std::string& severity, const std::string& dashboard_url) {
  json labels{{"alertname", "postwatch_" + c.value("kind", std::string("alarm"))},
              {"severity", severity},
              {"alarm_id", as_text(c.value("id", json(0)))}};
  const json facts = c.value("facts", json::object());
  if (c.value("kind", "") == "goal") {
    labels["goal"] = as_text(c.value("goal", json(0)));
    if (!facts.value("pillar", "").empty()) labels["pillar"] = facts["pillar"];
  } else if (c.contains("post") && c["post"].is_string() && !c["post"].get<std::string>().empty()) {
    labels["post"] = c["post"];
    // A post alarm's own post comes first in its facts, with its region.
    if (facts.contains("regions") && !facts["regions"].empty()) labels["region"] = facts["regions"][0];
  }
  json annotations{{"summary", alarm_summary(c)}};
  std::string description = alarm_causes_text(c);
  if (!description.empty()) annotations["description"] = description;
  auto list = [](const json& l) {
    std::string out;
    for (const auto& v : l) out += (out.empty() ? "" : ", ") + as_text(v);
    return out;
  };
  if (facts.contains("posts") && !facts["posts"].empty()) annotations["posts"] = list(facts["posts"]);
  if (facts.contains("regions") && !facts["regions"].empty()) annotations["regions"] = list(facts["regions"]);
  if (c.value("acknowledged", false) && c.contains("ack"))
    annotations["acknowledged_by"] = c["ack"].value("by", std::string());
  json alert{{"labels", labels}, {"annotations", annotations}};
  if (c.contains("raised_at_ms") && c["raised_at_ms"].is_number())
    alert["startsAt"] = rfc3339_utc(c["raised_at_ms"].get<std::int64_t>());
  if (c.contains("cleared_at_ms") && c["cleared_at_ms"].is_number())
    alert["endsAt"] = rfc3339_utc(c["cleared_at_ms"].get<std::int64_t>());
  if (!dashboard_url.empty()) alert["generatorURL"] = dashboard_url;
  return alert;
}

}  // namespace

json alertmanager_alerts(const json& alarms, const std::string& dashboard_url, std::int64_t now_ms) {
  json out = json::array();
  std::map<std::string, std::size_t> at;  // labels -> index in out: the last change of an alert wins
  auto put = [&](json alert) {
    auto key = alert["labels"].dump();
    if (auto it = at.find(key); it != at.end())
      out[it->second] = std::move(alert);
    else {
      at[key] = out.size();
      out.push_back(std::move(alert));
    }
  };
  for (const auto& c : alarms) {
    if (!c.is_object()) continue;
    const std::string level = c.value("level", std::string("unknown"));
    const std::string event = c.value("event", std::string());
    // The level the alarm left: its alert (another severity label) ends now.
    const char* left = event == "escalated" ? "amber" : event == "deescalated" ? "red" : nullptr;
    if (left && level != left) {
      json ended = alert_for(c, left, dashboard_url);
      std::int64_t raised = c.value("raised_at_ms", std::int64_t{0});
      ended["endsAt"] = rfc3339_utc(std::max(now_ms, raised));
      put(std::move(ended));
    }
    put(alert_for(c, level, dashboard_url));
  }
  return out;
}

AlertmanagerChannel::AlertmanagerChannel(AlertmanagerChannelConfig config, std::string dashboard_url)
    : config_(std::move(config)), dashboard_url_(std::move(dashboard_url)) {
  std::string base = config_.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  endpoint_ = base + "/api/v2/alerts";
}

DeliveryResult AlertmanagerChannel::deliver(const std::string& body, std::int64_t now_ms) const {
  json notification = json::parse(body, nullptr, false);
  if (!notification.is_object() || !notification.contains("alarms"))
    return {false, "not a notification (no \"alarms\")"};
  json alerts = alertmanager_alerts(notification["alarms"], dashboard_url_, now_ms);
  if (alerts.empty()) return {true, ""};  // nothing to say (an empty re-send)
  return post_json(endpoint_, alerts.dump(), {}, config_.transport);
}

}  // namespace postwatch::aggregator
