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

std::string read_secret(const json& c, const std::string& where, const char* field,
                        const std::filesystem::path& base_dir) {
  std::filesystem::path file = required_string(c, where, field);
  if (file.is_relative()) file = base_dir / file;
  try {
    return read_secret_file(file);
  } catch (const std::runtime_error& e) {
    fail(where, std::string(field) + ": " + e.what());
  }
}

bool is_loopback_host(std::string_view url) {
  auto rest = url.substr(url.find("://") + 3);
  auto host = rest.starts_with("[") ? rest.substr(0, rest.find(']') + 1) : rest.substr(0, rest.find_first_of(":/?#"));
  return host == "localhost" || host.starts_with("127.") || host == "[::1]";
}

// An address as SMTP needs it: local@domain, nothing a header or a command could be split on.
void check_address(const std::string& a, const std::string& where) {
  auto at = a.find('@');
  bool ok = at != std::string::npos && at > 0 && at + 1 < a.size() && a.find('@', at + 1) == std::string::npos;
  for (unsigned char c : a) ok = ok && c > 0x20 && c < 0x7f && c != '<' && c != '>' && c != ',' && c != '"';
  if (!ok) fail(where, "'" + a + "' is not an email address (local@domain, no spaces or <>,\")");
}

// A channel's timeout_s and ca_file, and its username and password_file where it takes a
// login. `in_clear`: nothing encrypts the connection to `url`, so a password may only go to
// this machine.
ChannelTransport parse_transport(const json& c, const std::string& named, const std::filesystem::path& base_dir,
                                 ChannelTransport out, const std::string& url, bool in_clear) {
  out.timeout_ms = seconds_field(c, named, "timeout_s", out.timeout_ms, 0.1, 300);
  if (c.contains("ca_file")) {
    std::filesystem::path file = required_string(c, named, "ca_file");
    if (file.is_relative()) file = base_dir / file;
    std::ifstream in(file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && text.empty()) fail(named, "ca_file: cannot read " + file.string());
    if (text.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
      fail(named, "ca_file: " + file.string() + " holds no PEM certificate");
    out.ca_file = file.string();
  }
  if (c.contains("username")) out.username = required_string(c, named, "username");
  if (c.contains("password_file")) {
    if (out.username.empty()) fail(named, "'password_file' needs a 'username'");
    out.password = read_secret(c, named, "password_file", base_dir);
    if (in_clear && !is_loopback_host(url))
      fail(named, "a password would cross the network in clear: use an encrypted url (https://, smtps://) or STARTTLS");
  }
  return out;
}

WebhookChannelConfig parse_webhook(const json& c, const std::string& named, const std::filesystem::path& base_dir) {
  only_fields(c, named, {"name", "kind", "type", "url", "secret_file", "timeout_s", "ca_file"});
  WebhookChannelConfig out;
  out.url = required_string(c, named, "url");
  if (auto problem = check_url(out.url); !problem.empty()) fail(named, problem);
  out.secret = read_secret(c, named, "secret_file", base_dir);
  out.transport = parse_transport(c, named, base_dir, out.transport, out.url, false);
  return out;
}

AlertmanagerChannelConfig parse_alertmanager(const json& c, const std::string& named,
                                             const std::filesystem::path& base_dir) {
  only_fields(
      c, named,
      {"name", "kind", "type", "url", "timeout_s", "resend_interval_s", "ca_file", "username", "password_file"});
  AlertmanagerChannelConfig out;
  out.url = required_string(c, named, "url");
  if (auto problem = check_url(out.url); !problem.empty()) fail(named, problem);
  out.transport = parse_transport(c, named, base_dir, out.transport, out.url, !out.url.starts_with("https://"));
  // Alertmanager resolves an alert it has not heard of for its resolve_timeout (5 min by
  // default): a re-send must come well within that.
  out.resend_interval_ms = seconds_field(c, named, "resend_interval_s", out.resend_interval_ms, 1, 3600);
  return out;
}

EmailChannelConfig parse_email(const json& c, const std::string& named, const std::filesystem::path& base_dir) {
  only_fields(
      c, named,
      {"name", "kind", "type", "smtp_url", "tls", "from", "to", "username", "password_file", "timeout_s", "ca_file"});
  EmailChannelConfig out;
  out.smtp_url = required_string(c, named, "smtp_url");
  const bool smtps = out.smtp_url.starts_with("smtps://");
  if (!smtps && !out.smtp_url.starts_with("smtp://"))
    fail(named, "smtp_url must start with smtp:// (STARTTLS) or smtps:// (TLS from the start)");
  auto host = std::string_view(out.smtp_url).substr(out.smtp_url.find("://") + 3);
  if (host.empty() || host.front() == '/' || host.front() == ':') fail(named, "smtp_url has no host");
  for (unsigned char ch : out.smtp_url)
    if (ch <= 0x20 || ch >= 0x7f) fail(named, "smtp_url holds a space or a control character");
  if (c.contains("tls")) {
    if (!c["tls"].is_string() || (c["tls"] != "starttls" && c["tls"] != "none"))
      fail(named, "'tls' must be \"starttls\" (the default) or \"none\"");
    out.starttls = c["tls"] == "starttls";
    if (smtps && !out.starttls) fail(named, "'tls': \"none\" contradicts an smtps:// url");
  }
  out.from = required_string(c, named, "from");
  check_address(out.from, named + ".from");
  if (!c.contains("to")) fail(named, "missing field 'to'");
  json to = as_list(c["to"]);
  if (to.empty()) fail(named, "'to' must name at least one address");
  for (const auto& t : to) {
    if (!t.is_string()) fail(named + ".to", "addresses must be strings, not " + t.dump());
    check_address(t.get<std::string>(), named + ".to");
    out.to.push_back(t.get<std::string>());
  }
  out.transport = parse_transport(c, named, base_dir, out.transport, out.smtp_url, !smtps && !out.starttls);
  return out;
}

ChannelConfig parse_channel(const json& c, const std::string& where, const std::filesystem::path& base_dir) {
  if (!c.is_object()) fail(where, "must be an object");
  auto name = required_string(c, where, "name");
  const std::string named = where + " ('" + name + "')";
  // "kind" is the field's name since the webhook channel; "type" is accepted as a synonym.
  if (c.contains("kind") && c.contains("type") && c["kind"] != c["type"])
    fail(named, "'kind' and 'type' say different things; give one of them");
  auto kind = required_string(c, named, c.contains("type") && !c.contains("kind") ? "type" : "kind");
  ChannelConfig out;
  if (kind == "webhook")
    out = parse_webhook(c, named, base_dir);
  else if (kind == "alertmanager")
    out = parse_alertmanager(c, named, base_dir);
  else if (kind == "email")
    out = parse_email(c, named, base_dir);
  else
    fail(named, "unknown channel kind '" + kind + "' (webhook, alertmanager or email)");
  std::visit([&](auto& ch) { ch.name = name; }, out);
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

namespace {

// A route's or an escalation step's "channels": a non-empty list of names in cfg.channels.
std::vector<std::string> channel_names(const json& j, const std::string& where, const NotificationConfig& cfg) {
  if (!j.contains("channels") || !j["channels"].is_array() || j["channels"].empty())
    fail(where, "needs a non-empty list \"channels\" of channel names");
  std::vector<std::string> out;
  for (const auto& name : j["channels"]) {
    if (!name.is_string()) fail(where + ".channels", "names must be strings, not " + name.dump());
    if (!cfg.find_channel(name.get<std::string>()))
      fail(where + ".channels", "unknown channel '" + name.get<std::string>() + "' (not in \"channels\")");
    out.push_back(name.get<std::string>());
  }
  return out;
}

// [{"after_s": 900, "channels": [...]}, ...]: each step later than the one before.
std::vector<EscalationStep> parse_escalation(const json& j, const std::string& where, const NotificationConfig& cfg) {
  if (!j.is_array() || j.empty())
    fail(where, "must be a non-empty list of steps {\"after_s\": seconds, \"channels\": [...]}");
  std::vector<EscalationStep> steps;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!j[i].is_object()) fail(at, "must be an object {\"after_s\": seconds, \"channels\": [...]}");
    only_fields(j[i], at, {"after_s", "channels"});
    if (!j[i].contains("after_s")) fail(at, "missing field 'after_s'");
    EscalationStep step{seconds_field(j[i], at, "after_s", 0, 1, 7 * 86400), channel_names(j[i], at, cfg)};
    if (!steps.empty() && step.after_ms <= steps.back().after_ms)
      fail(at, "'after_s' must be later than the step before's");
    steps.push_back(std::move(step));
  }
  return steps;
}

}  // namespace

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
  only_fields(j, origin, {"channels", "routes", "retry", "warn_pending_after_s", "dashboard_url", "flapping"});
  NotificationConfig cfg;
  if (j.contains("dashboard_url")) {
    cfg.dashboard_url = required_string(j, origin, "dashboard_url");
    if (auto problem = check_url(cfg.dashboard_url); !problem.empty()) fail(origin + ": dashboard_url", problem);
  }
  if (!j.contains("channels") || !j["channels"].is_array() || j["channels"].empty())
    fail(origin, "needs a non-empty list \"channels\"");
  if (!j.contains("routes") || !j["routes"].is_array() || j["routes"].empty())
    fail(origin, "needs a non-empty list \"routes\"");
  for (std::size_t i = 0; i < j["channels"].size(); ++i) {
    const std::string where = origin + ": channels[" + std::to_string(i) + "]";
    auto c = parse_channel(j["channels"][i], where, base_dir);
    if (cfg.find_channel(channel_name(c))) fail(where, "a second channel named '" + channel_name(c) + "'");
    cfg.channels.push_back(std::move(c));
  }
  for (std::size_t i = 0; i < j["routes"].size(); ++i) {
    const std::string where = origin + ": routes[" + std::to_string(i) + "]";
    const auto& r = j["routes"][i];
    if (!r.is_object()) fail(where, "must be an object");
    only_fields(r, where, {"match", "channels", "group_wait_s", "repeat_interval_s", "escalate"});
    NotificationRoute route;
    if (r.contains("match")) route.match = parse_alarm_matcher(r["match"], where + ".match", catalogue);
    route.channels = channel_names(r, where, cfg);
    route.group_wait_ms = seconds_field(r, where, "group_wait_s", 0, 0, 3600);
    route.repeat_interval_ms = seconds_field(r, where, "repeat_interval_s", 0, 0, 7 * 86400);
    if (route.repeat_interval_ms > 0 && route.repeat_interval_ms < 1000)
      fail(where, "'repeat_interval_s' must be 0 (no reminders) or at least 1");
    if (r.contains("escalate")) route.escalate = parse_escalation(r["escalate"], where + ".escalate", cfg);
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
  if (j.contains("flapping")) {
    const std::string where = origin + ": flapping";
    const auto& f = j["flapping"];
    if (!f.is_object()) fail(where, "must be an object {\"openings\", \"window_s\"}");
    only_fields(f, where, {"openings", "window_s"});
    if (f.contains("openings")) {
      const auto& n = f["openings"];
      if (!n.is_number_unsigned() || n.get<unsigned>() == 1 || n.get<unsigned>() > 100)
        fail(where, "'openings' must be 0 (no flap detection) or a whole number from 2 to 100");
      cfg.flapping.openings = n.get<unsigned>();
    }
    cfg.flapping.window_ms = seconds_field(f, where, "window_s", cfg.flapping.window_ms, 10, 86400);
  }
  return cfg;
}

const ChannelConfig* NotificationConfig::find_channel(std::string_view name) const {
  for (const auto& c : channels)
    if (channel_name(c) == name) return &c;
  return nullptr;
}

const std::string& channel_name(const ChannelConfig& c) {
  return std::visit([](const auto& ch) -> const std::string& { return ch.name; }, c);
}

std::string_view channel_kind(const ChannelConfig& c) {
  static constexpr std::string_view kKinds[] = {"webhook", "alertmanager", "email"};
  return kKinds[c.index()];
}

}  // namespace postwatch::aggregator
