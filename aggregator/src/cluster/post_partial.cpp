#include "cluster/post_partial.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::aggregator {
using nlohmann::json;

std::uint64_t PostPartial::highest_seq(std::string_view agent) const {
  for (const auto& a : agents)
    if (a.agent == agent) return a.seqs.any ? a.seqs.highest : 0;
  return 0;
}

std::string encode_partial(const PostPartial& p, const IndicatorCatalogue& catalogue) {
  const auto& inds = catalogue.indicators();
  json cells = json::array();
  json corrections = json::object();  // beside the cells: older instances read cells positionally
  for (const auto& c : p.rows.cells) {
    json cell = {inds[c.indicator].id, c.reading.number, c.reading.observed_at_ms, c.reading.received_at_ms};
    if (!c.text.empty()) cell.push_back(c.text);
    cells.push_back(std::move(cell));
    if (c.reading.clock_correction_ms != 0) corrections[inds[c.indicator].id] = c.reading.clock_correction_ms;
  }
  json windows = json::object();
  for (const auto& w : p.rows.windows) windows[inds[w.indicator].id] = w.buckets;
  json agents = json::array();
  for (const auto& a : p.agents) {
    json runs = json::array();
    for (const auto& r : a.seqs.seen) runs.push_back({r.lo, r.hi});
    agents.push_back({{"agent", a.agent},
                      {"base", a.seqs.base},
                      {"first_seen", a.seqs.first_seen},
                      {"anchored", a.seqs.anchored},
                      {"hold_until", a.seqs.hold_until},
                      {"highest", a.seqs.highest},
                      {"gaps", a.seqs.gaps},
                      {"any", a.seqs.any},
                      {"runs", std::move(runs)},
                      {"clock_skew_ms", a.clock_skew_ms},
                      {"last_event_ms", a.last_event_ms},
                      {"events", a.events},
                      {"reordered", a.reordered}});
  }
  json j = {{"format", PostPartial::kFormat},
            {"post", p.post},
            {"owner", p.owner},
            {"incarnation", p.incarnation},
            {"published_at_ms", p.published_at_ms},
            {"last_seen_ms", p.rows.last_seen_ms},
            {"cells", std::move(cells)},
            {"clock_corrections", std::move(corrections)},
            {"windows", std::move(windows)},
            {"agents", std::move(agents)}};
  return j.dump();
}

std::string decode_partial(std::string_view payload, const IndicatorCatalogue& catalogue, PostPartial& out) {
  json j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "not a JSON object";
  try {
    if (j.at("format").get<int>() != PostPartial::kFormat)
      return "format " + j.at("format").dump() + ", this build reads " + std::to_string(PostPartial::kFormat);
    out = PostPartial{};
    out.post = j.at("post").get<std::string>();
    out.owner = j.at("owner").get<std::string>();
    out.incarnation = j.at("incarnation").get<std::string>();
    out.published_at_ms = j.at("published_at_ms").get<std::int64_t>();
    out.rows.last_seen_ms = j.at("last_seen_ms").get<std::int64_t>();
    for (const auto& c : j.at("cells")) {
      auto ix = catalogue.indicator_index(c.at(0).get<std::string>());
      if (!ix) continue;
      PostRows::Cell cell;
      cell.indicator = *ix;
      cell.reading.number = c.at(1).get<double>();
      cell.reading.observed_at_ms = c.at(2).get<std::int64_t>();
      cell.reading.received_at_ms = c.at(3).get<std::int64_t>();
      cell.reading.present = true;
      if (c.size() > 4) cell.text = c.at(4).get<std::string>();
      if (auto k = j.find("clock_corrections"); k != j.end())
        if (auto v = k->find(c.at(0).get<std::string>()); v != k->end())
          cell.reading.clock_correction_ms = v->get<std::int64_t>();
      out.rows.cells.push_back(std::move(cell));
    }
    for (const auto& [id, buckets] : j.at("windows").items()) {
      auto ix = catalogue.indicator_index(id);
      if (!ix) continue;
      out.rows.windows.push_back({*ix, buckets.get<std::vector<std::pair<std::int64_t, double>>>()});
    }
    for (const auto& a : j.at("agents")) {
      AgentTrackSnapshot t;
      t.agent = a.at("agent").get<std::string>();
      t.seqs.base = a.at("base").get<std::uint64_t>();
      t.seqs.highest = a.at("highest").get<std::uint64_t>();
      t.seqs.gaps = a.at("gaps").get<std::uint64_t>();
      t.seqs.any = a.at("any").get<bool>();
      if (a.contains("runs")) {
        t.seqs.first_seen = a.at("first_seen").get<std::uint64_t>();
        t.seqs.anchored = a.at("anchored").get<bool>();
        t.seqs.hold_until = a.at("hold_until").get<std::uint64_t>();
        for (const auto& r : a.at("runs"))
          t.seqs.seen.push_back({r.at(0).get<std::uint64_t>(), r.at(1).get<std::uint64_t>()});
      } else {  // from an instance before the runs: single seen seqs, anchored at its first seq seen
        t.seqs.first_seen = a.at("gap_floor").get<std::uint64_t>();
        for (auto seq : a.at("seen").get<std::vector<std::uint64_t>>()) t.seqs.seen.push_back({seq, seq});
      }
      t.clock_skew_ms = a.at("clock_skew_ms").get<std::int64_t>();
      t.last_event_ms = a.at("last_event_ms").get<std::int64_t>();
      t.events = a.at("events").get<std::uint64_t>();
      t.reordered = a.at("reordered").get<std::uint64_t>();
      out.agents.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    return std::string("malformed partial: ") + e.what();
  }
  if (!catalogue.post_index(out.post)) return "unknown post '" + out.post + "'";
  return "";
}

}  // namespace postwatch::aggregator
