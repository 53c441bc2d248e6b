#include "alerting/notification_config.hpp"

#include "postwatch/secret_file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

constexpr std::string_view kAlarmKinds[] = {"goal", "post_silent", "topic_mismatch", "clock_offset", "store_failing"};

[[noreturn]] void fail(const std::string& where, const std::string& problem) {
  throw NotificationConfigError(where + ": " + problem);
}

void only_fields(const json& j, const std::string& where, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, _] : j.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) fail(where, "unknown field '" + key + "'");
}

std::string required_string(const json& j, const std::string& where, const char* field) {
  if (!j.contains(field)) fail(where, std::string("missing field '") + field + "'");
  if (!j[field].is_string() || j[field].get<std::string>().empty())
    fail(where, std::string("'") + field + "' must be a non-empty string");
  return j[field].get<std::string>();
}

// Seconds (a number >= min_s, fractions allowed) as milliseconds, or `fallback` when absent.
std::int64_t seconds_field(const json& j, const std::string& where, const char* field, std::int64_t fallback,
                           double min_s, double max_s) {
  if (!j.contains(field)) return fallback;
  const auto& v = j[field];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < min_s || v.get<double>() > max_s) {
    std::ostringstream range;
    range << "'" << field << "' must be a number of seconds from " << min_s << " to " << max_s;
    fail(where, range.str());
  }
  return static_cast<std::int64_t>(std::llround(v.get<double>() * 1000.0));
}

// http://host[:port][/path] or https://...; nothing a request line or header could be split on.
std::string check_url(const std::string& url) {
  std::string_view rest = url;
  if (rest.starts_with("https://"))
    rest.remove_prefix(8);
  else if (rest.starts_with("http://"))
    rest.remove_prefix(7);
  else
    return "url must start with http:// or https://";
  auto host_end = rest.find_first_of("/?#");
  if (rest.substr(0, host_end).empty()) return "url has no host";
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7f) return "url holds a space or a control character";
  return "";
}

// A matcher value may be one value or a list of them.
json as_list(const json& v) { return v.is_array() ? v : json::array({v}); }

WebhookChannelConfig parse_channel(const json& c, const std::string& where, const std::filesystem::path& base_dir) {
  if (!c.is_object()) fail(where, "must be an object");
  only_fields(c, where, {"name", "kind", "url", "secret_file", "timeout_s"});
  WebhookChannelConfig out;
  out.name = required_string(c, where, "name");
  const std::string named = where + " ('" + out.name + "')";
  auto kind = required_string(c, named, "kind");
  if (kind != "webhook")
    fail(named, "kind '" + kind + "' is not built yet; the only channel kind is \"webhook\" (docs/alerting.md)");
  out.url = required_string(c, named, "url");
  if (auto problem = check_url(out.url); !problem.empty()) fail(named, problem);
  std::filesystem::path secret = required_string(c, named, "secret_file");
  if (secret.is_relative()) secret = base_dir / secret;
  try {
    out.secret = read_secret_file(secret);
  } catch (const std::runtime_error& e) {
    fail(named, std::string("secret_file: ") + e.what());
  }
  out.timeout_ms = seconds_field(c, named, "timeout_s", out.timeout_ms, 0.1, 300);
  return out;
}

}  // namespace

AlarmMatcher parse_alarm_matcher(const json& m, const std::string& where, const IndicatorCatalogue& cat) {
  if (!m.is_object()) fail(where, "must be an object");
  only_fields(m, where, {"kind", "level", "goal", "pillar", "region", "post"});
  AlarmMatcher out;
  for (const auto& [key, value] : m.items()) {
    const std::string at = where + "." + key;
    json list = as_list(value);
    if (list.empty()) fail(at, "an empty list matches nothing; leave the field out to match every alarm");
    for (const auto& v : list) {
      if (key == "goal") {
        if (!v.is_number_integer() || !cat.find_goal(v.get<int>()))
          fail(at, "unknown goal " + v.dump() + " (the catalogue's goals are numbered 1-" +
                       std::to_string(cat.goals().size()) + ")");
        out.goals.push_back(v.get<int>());
        continue;
      }
      if (!v.is_string()) fail(at, "values must be strings, not " + v.dump());
      auto s = v.get<std::string>();
      if (key == "kind") {
        if (std::find(std::begin(kAlarmKinds), std::end(kAlarmKinds), s) == std::end(kAlarmKinds))
          fail(at, "unknown alarm kind '" + s + "' (goal, post_silent, topic_mismatch, clock_offset or store_failing)");
        out.kinds.push_back(s);
      } else if (key == "level") {
        if (s != "amber" && s != "red") fail(at, "level must be \"amber\" or \"red\", not '" + s + "'");
        out.levels.push_back(s);
      } else if (key == "pillar") {
        const auto& ps = cat.pillars();
        if (std::none_of(ps.begin(), ps.end(), [&](const Pillar& p) { return p.id == s; }))
          fail(at, "unknown pillar '" + s + "'");
        out.pillars.push_back(s);
      } else if (key == "region") {
        if (!cat.region_index(s)) fail(at, "unknown region '" + s + "'");
        out.regions.push_back(s);
      } else {
        if (!cat.find_post(s)) fail(at, "unknown post '" + s + "'");
        out.posts.push_back(s);
      }
    }
  }
  return out;
}

NotificationConfig NotificationConfig::load(const std::filesystem::path& file, const IndicatorCatalogue& catalogue) {
  std::ifstream in(file);
  if (!in) throw NotificationConfigError("notifications file " + file.string() + ": cannot open it (no such file?)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), "notifications file " + file.string(), file.parent_path(), catalogue);
}

NotificationConfig NotificationConfig::parse(std::string_view json_text, const std::string& origin,
                                             const std::filesystem::path& base_dir,
                                             const IndicatorCatalogue& catalogue) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    fail(origin, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(origin, "must be a JSON object with \"channels\" and \"routes\"");
  only_fields(j, origin, {"channels", "routes", "retry", "warn_pending_after_s"});
  NotificationConfig cfg;
  if (!j.contains("channels") || !j["channels"].is_array() || j["channels"].empty())
    fail(origin, "needs a non-empty list \"channels\"");
  if (!j.contains("routes") || !j["routes"].is_array() || j["routes"].empty())
    fail(origin, "needs a non-empty list \"routes\"");
  for (std::size_t i = 0; i < j["channels"].size(); ++i) {
    const std::string where = origin + ": channels[" + std::to_string(i) + "]";
    auto c = parse_channel(j["channels"][i], where, base_dir);
    if (cfg.find_channel(c.name)) fail(where, "a second channel named '" + c.name + "'");
    cfg.channels.push_back(std::move(c));
  }
  for (std::size_t i = 0; i < j["routes"].size(); ++i) {
    const std::string where = origin + ": routes[" + std::to_string(i) + "]";
    const auto& r = j["routes"][i];
    if (!r.is_object()) fail(where, "must be an object");
    only_fields(r, where, {"match", "channels", "group_wait_s", "repeat_interval_s"});
    NotificationRoute route;
    if (r.contains("match")) route.match = parse_alarm_matcher(r["match"], where + ".match", catalogue);
    if (!r.contains("channels") || !r["channels"].is_array() || r["channels"].empty())
      fail(where, "needs a non-empty list \"channels\" of channel names");
    for (const auto& name : r["channels"]) {
      if (!name.is_string()) fail(where + ".channels", "names must be strings, not " + name.dump());
      if (!cfg.find_channel(name.get<std::string>()))
        fail(where + ".channels", "unknown channel '" + name.get<std::string>() + "' (not in \"channels\")");
      route.channels.push_back(name.get<std::string>());
    }
    route.group_wait_ms = seconds_field(r, where, "group_wait_s", 0, 0, 3600);
    route.repeat_interval_ms = seconds_field(r, where, "repeat_interval_s", 0, 0, 7 * 86400);
    if (route.repeat_interval_ms > 0 && route.repeat_interval_ms < 1000)
      fail(where, "'repeat_interval_s' must be 0 (no reminders) or at least 1");
    cfg.routes.push_back(std::move(route));
  }
  if (j.contains("retry")) {
    const std::string where = origin + ": retry";
    const auto& r = j["retry"];
    if (!r.is_object()) fail(where, "must be an object {\"initial_s\", \"max_s\"}");
    only_fields(r, where, {"initial_s", "max_s"});
    cfg.retry_initial_ms = seconds_field(r, where, "initial_s", cfg.retry_initial_ms, 0.05, 3600);
    cfg.retry_max_ms = seconds_field(r, where, "max_s", cfg.retry_max_ms, 0.05, 86400);
    if (cfg.retry_max_ms < cfg.retry_initial_ms) fail(where, "'max_s' is smaller than 'initial_s'");
  }
  cfg.warn_pending_after_ms = seconds_field(j, origin, "warn_pending_after_s", cfg.warn_pending_after_ms, 1, 7 * 86400);
  return cfg;
}

const WebhookChannelConfig* NotificationConfig::find_channel(std::string_view name) const {
  for (const auto& c : channels)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace postwatch::aggregator
