#include "rollup/board_image.hpp"

#include <algorithm>

namespace postwatch::aggregator {
using nlohmann::json;

json alarm_to_json(const Alarm& a) {
  json causes = json::array();
  for (const auto& c : a.causes)
    causes.push_back(
        {{"post", c.post}, {"indicator", c.indicator}, {"value", c.value}, {"status", to_string(c.status)}});
  return {{"id", a.id},
          {"kind", to_string(a.kind)},
          {"goal", a.goal},
          {"post", a.post},
          {"level", to_string(a.level)},
          {"worst_level", to_string(a.worst_level)},
          {"raised_at_ms", a.raised_at_ms},
          {"cleared_at_ms", a.cleared_at_ms},
          {"causes", causes},
          {"acked_by", a.acked_by},
          {"ack_comment", a.ack_comment},
          {"acked_at_ms", a.acked_at_ms}};
}

std::optional<Alarm> alarm_from_json(const json& j) {
  auto kind = parse_alarm_kind(j.value("kind", ""));
  if (!kind) return std::nullopt;
  Alarm a;
  a.id = j.value("id", std::uint64_t{0});
  a.kind = *kind;
  a.goal = j.value("goal", 0);
  a.post = j.value("post", "");
  a.level = parse_status(j.value("level", ""));
  a.worst_level = j.contains("worst_level") ? parse_status(j.value("worst_level", "")) : a.level;  // older stores
  a.raised_at_ms = j.value("raised_at_ms", std::int64_t{0});
  a.cleared_at_ms = j.value("cleared_at_ms", std::int64_t{0});
  for (const auto& c : j.value("causes", json::array()))
    a.causes.push_back(
        {c.value("post", ""), c.value("indicator", ""), c.value("value", 0.0), parse_status(c.value("status", ""))});
  a.acked_by = j.value("acked_by", "");
  a.ack_comment = j.value("ack_comment", "");
  a.acked_at_ms = j.value("acked_at_ms", std::int64_t{0});
  return a;
}

namespace {
json shown_to_json(const ShownStatus& s) {
  return {to_string(s.shown), s.since_ms, to_string(s.candidate), s.candidate_since_ms, s.health, s.score};
}
ShownStatus shown_from_json(const json& j) {
  return {parse_status(j.at(0).get<std::string>()),
          j.at(1).get<std::int64_t>(),
          parse_status(j.at(2).get<std::string>()),
          j.at(3).get<std::int64_t>(),
          j.at(4).get<double>(),
          j.at(5).get<double>()};
}
}  // namespace

std::string encode_board_image(const StatusBoard& board, std::size_t cleared_kept) {
  json goals = json::array(), pillars = json::array(), alarms = json::array();
  for (const auto& s : board.goals()) goals.push_back(shown_to_json(s));
  for (const auto& s : board.pillars()) pillars.push_back(shown_to_json(s));
  std::size_t cleared =
      std::count_if(board.alarms().begin(), board.alarms().end(), [](const Alarm& a) { return !a.open(); });
  for (const auto& a : board.alarms()) {  // in id order: the oldest cleared ones are left out
    if (!a.open() && cleared-- > cleared_kept) continue;
    alarms.push_back(alarm_to_json(a));
  }
  return json{{"format", BoardImage::kFormat}, {"goals", goals}, {"pillars", pillars}, {"alarms", alarms}}.dump();
}

std::string decode_board_image(std::string_view text, const IndicatorCatalogue& catalogue, BoardImage& out) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "not a JSON object";
  try {
    if (j.at("format").get<int>() != BoardImage::kFormat)
      return "format " + j.at("format").dump() + ", this build reads " + std::to_string(BoardImage::kFormat);
    out = BoardImage{};
    for (const auto& s : j.at("goals")) out.goals.push_back(shown_from_json(s));
    for (const auto& s : j.at("pillars")) out.pillars.push_back(shown_from_json(s));
    for (const auto& a : j.at("alarms"))
      if (auto alarm = alarm_from_json(a)) out.alarms.push_back(std::move(*alarm));
  } catch (const json::exception& e) {
    return std::string("malformed board: ") + e.what();
  }
  if (out.goals.size() != catalogue.goals().size() || out.pillars.size() != catalogue.pillars().size())
    return "board of " + std::to_string(out.goals.size()) + " goals and " + std::to_string(out.pillars.size()) +
           " pillars; this catalogue has " + std::to_string(catalogue.goals().size()) + " and " +
           std::to_string(catalogue.pillars().size());
  return "";
}

}  // namespace postwatch::aggregator
