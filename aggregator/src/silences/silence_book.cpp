#include "silences/silence_book.hpp"

#include "alerting/notification_router.hpp"

#include <algorithm>
#include <stdexcept>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

json matcher_json(const AlarmMatcher& m) {
  json j = json::object();
  if (!m.kinds.empty()) j["kind"] = m.kinds;
  if (!m.levels.empty()) j["level"] = m.levels;
  if (!m.goals.empty()) j["goal"] = m.goals;
  if (!m.pillars.empty()) j["pillar"] = m.pillars;
  if (!m.regions.empty()) j["region"] = m.regions;
  if (!m.posts.empty()) j["post"] = m.posts;
  return j;
}

AlarmMatcher matcher_from_json(const json& j) {
  AlarmMatcher m;
  auto list = [&](const char* key, auto& out) {
    if (auto it = j.find(key); it != j.end() && it->is_array()) it->get_to(out);
  };
  list("kind", m.kinds);
  list("level", m.levels);
  list("goal", m.goals);
  list("pillar", m.pillars);
  list("region", m.regions);
  list("post", m.posts);
  return m;
}

[[noreturn]] void refuse(const std::string& why) { throw std::invalid_argument(why); }

std::int64_t ms_field(const json& body, const char* key) {
  const auto& v = body[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() <= 0)
    refuse(std::string(key) + " must be a positive whole number of milliseconds since 1970 (UTC), not " + v.dump());
  return v.get<std::int64_t>();
}

}  // namespace

json silence_json(const Silence& s, std::int64_t now_ms) {
  json j{{"id", s.id},
         {"state", s.state(now_ms)},
         {"maintenance", s.maintenance},
         {"match", matcher_json(s.match)},
         {"starts_at_ms", s.starts_at_ms},
         {"ends_at_ms", s.ends_at_ms},
         {"comment", s.comment},
         {"created_by", s.created_by},
         {"created_at_ms", s.created_at_ms},
         {"ended_at_ms", s.ended_at_ms != 0 ? json(s.ended_at_ms) : json(nullptr)},
         {"ended_by", s.ended_at_ms != 0 ? json(s.ended_by) : json(nullptr)}};
  return j;
}

std::optional<Silence> silence_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  try {
    Silence s;
    s.id = j.at("id").get<std::uint64_t>();
    s.maintenance = j.value("maintenance", false);
    s.match = matcher_from_json(j.value("match", json::object()));
    s.starts_at_ms = j.at("starts_at_ms").get<std::int64_t>();
    s.ends_at_ms = j.at("ends_at_ms").get<std::int64_t>();
    s.comment = j.value("comment", "");
    s.created_by = j.value("created_by", "");
    s.created_at_ms = j.value("created_at_ms", std::int64_t{0});
    if (j.contains("ended_at_ms") && j["ended_at_ms"].is_number_integer()) {
      s.ended_at_ms = j["ended_at_ms"].get<std::int64_t>();
      s.ended_by = j.value("ended_by", "");
    }
    return s;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

Silence silence_from_request(const json& body, const IndicatorCatalogue& catalogue, const std::string& default_by,
                             std::int64_t now_ms) {
  if (!body.is_object()) refuse("the body must be a JSON object");
  static const char* const known[] = {"match",        "comment",    "by",        "maintenance",
                                      "starts_at_ms", "ends_at_ms", "duration_s"};
  for (const auto& [key, value] : body.items())
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) == std::end(known))
      refuse("unknown field '" + key +
             "' (known: match, comment, by, maintenance, starts_at_ms, ends_at_ms or duration_s)");
  Silence s;
  if (!body.contains("match") || !body["match"].is_object() || body["match"].empty())
    refuse("match is needed: an object such as {\"post\": \"bamako\"}; a silence of everything is refused");
  try {
    s.match = parse_alarm_matcher(body["match"], "match", catalogue);
  } catch (const NotificationConfigError& e) {
    refuse(e.what());
  }
  if (body.contains("maintenance")) {
    if (!body["maintenance"].is_boolean()) refuse("maintenance must be true or false");
    s.maintenance = body["maintenance"].get<bool>();
  }
  if (s.maintenance && s.match.posts.empty() && s.match.regions.empty())
    refuse("a maintenance window must name its posts: match.post or match.region");
  if (!body.contains("comment") || !body["comment"].is_string() || body["comment"].get<std::string>().empty())
    refuse("comment is needed: why, e.g. \"planned power works\"");
  s.comment = body["comment"].get<std::string>();
  if (body.contains("by") && !body["by"].is_string()) refuse("by must be a string");
  s.created_by = body.value("by", default_by);
  if (s.created_by.empty()) refuse("by is needed: who sets the silence");
  if (s.comment.size() > 1024 || s.created_by.size() > 128) refuse("by is limited to 128 bytes and comment to 1024");

  s.starts_at_ms = body.contains("starts_at_ms") ? ms_field(body, "starts_at_ms") : now_ms;
  const bool has_end = body.contains("ends_at_ms"), has_duration = body.contains("duration_s");
  if (has_end == has_duration) refuse("give either ends_at_ms or duration_s");
  if (has_end) {
    s.ends_at_ms = ms_field(body, "ends_at_ms");
  } else {
    const auto& d = body["duration_s"];
    if (!d.is_number() || d.get<double>() <= 0) refuse("duration_s must be a positive number of seconds");
    s.ends_at_ms = s.starts_at_ms + static_cast<std::int64_t>(d.get<double>() * 1000);
  }
  if (s.ends_at_ms <= s.starts_at_ms) refuse("ends_at_ms must be after starts_at_ms");
  if (s.ends_at_ms <= now_ms) refuse("ends_at_ms is in the past: the silence would never hold");
  if (s.ends_at_ms - std::max(s.starts_at_ms, now_ms) > kMaxSilenceMs) refuse("a silence may last at most 90 days");
  s.created_at_ms = now_ms;
  return s;
}

void SilenceBook::restore(std::vector<Silence> silences) {
  std::sort(silences.begin(), silences.end(), [](const Silence& a, const Silence& b) { return a.id < b.id; });
  silences_ = std::move(silences);
  for (const auto& s : silences_) next_id_ = std::max(next_id_, s.id + 1);
}

std::uint64_t cluster_silence_id(std::int64_t now_ms, std::string_view instance) {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : instance) h = (h ^ c) * 16777619u;
  return (static_cast<std::uint64_t>(std::max<std::int64_t>(now_ms, 0)) << 10) | (h & 0x3ffu);
}

const Silence& SilenceBook::add(Silence s) {
  s.id = instance_.empty() ? next_id_ : std::max(next_id_, cluster_silence_id(s.created_at_ms, instance_));
  next_id_ = s.id + 1;
  silences_.push_back(std::move(s));  // the highest id: the vector stays sorted
  return silences_.back();
}

bool SilenceBook::merge(const Silence& s) {
  auto it = std::lower_bound(silences_.begin(), silences_.end(), s.id,
                             [](const Silence& x, std::uint64_t v) { return x.id < v; });
  if (it == silences_.end() || it->id != s.id) {
    silences_.insert(it, s);
    next_id_ = std::max(next_id_, s.id + 1);
    return true;
  }
  if (s.ended_at_ms == 0 || (it->ended_at_ms != 0 && it->ended_at_ms <= s.ended_at_ms)) return false;
  it->ended_at_ms = s.ended_at_ms;
  it->ended_by = s.ended_by;
  return true;
}

const Silence* SilenceBook::find(std::uint64_t id) const {
  auto it = std::lower_bound(silences_.begin(), silences_.end(), id,
                             [](const Silence& s, std::uint64_t v) { return s.id < v; });
  return it != silences_.end() && it->id == id ? &*it : nullptr;
}

std::optional<Silence> SilenceBook::end(std::uint64_t id, const std::string& by, std::int64_t now_ms) {
  auto it = std::find_if(silences_.begin(), silences_.end(), [&](const Silence& x) { return x.id == id; });
  if (it == silences_.end()) return std::nullopt;
  Silence* s = &*it;
  if (now_ms < s->end_ms()) {
    s->ended_at_ms = std::max(now_ms, s->starts_at_ms);  // a pending one ends before it starts
    s->ended_by = by;
  }
  return *s;
}

bool SilenceBook::silenced(const AlarmNotice& a, std::int64_t now_ms, std::uint64_t* why) const {
  for (const auto& s : silences_)
    if (s.holds(now_ms) && route_matches(s.match, a)) {
      if (why) *why = s.id;
      return true;
    }
  return false;
}

std::vector<std::uint64_t> SilenceBook::maintenance(std::int64_t now_ms) const {
  const auto& posts = catalogue_.posts();
  std::vector<std::uint64_t> out(posts.size(), 0);
  for (const auto& s : silences_) {
    if (!s.maintenance || !s.holds(now_ms)) continue;
    for (std::size_t p = 0; p < posts.size(); ++p) {
      if (out[p] != 0) continue;
      const auto& m = s.match;
      if (std::find(m.posts.begin(), m.posts.end(), posts[p].id) != m.posts.end() ||
          std::find(m.regions.begin(), m.regions.end(), posts[p].region) != m.regions.end())
        out[p] = s.id;
    }
  }
  return out;
}

SilenceBook::Transitions SilenceBook::tick(std::int64_t now_ms) {
  Transitions t;
  std::vector<std::uint64_t> holding;
  for (const auto& s : silences_)
    if (s.holds(now_ms)) holding.push_back(s.id);
  std::set_difference(holding.begin(), holding.end(), holding_.begin(), holding_.end(), std::back_inserter(t.started));
  std::set_difference(holding_.begin(), holding_.end(), holding.begin(), holding.end(), std::back_inserter(t.ended));
  holding_ = std::move(holding);
  std::erase_if(silences_, [&](const Silence& s) {
    const bool drop = now_ms - s.end_ms() > kKeepEndedSilenceMs;
    if (drop) t.dropped.push_back(s.id);
    return drop;
  });
  return t;
}

}  // namespace postwatch::aggregator
