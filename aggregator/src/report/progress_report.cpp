// The report as a whole: the cover with the summary of every goal, one section per result area
// in catalogue order, the goals in none, and how the report is made. A goal's own section is in
// report_goal_html.cpp.
#include "report/progress_report.hpp"

#include "report/report_format.hpp"
#include "report/report_html.hpp"
#include "report/report_svg.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <set>
#include <tuple>

namespace postwatch::aggregator {

using namespace report;

namespace {

// For paper: A4, each result area on a new page, colours printed as they are.
constexpr const char* kStyle = R"css(
@page { size: A4; margin: 15mm 14mm; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 9.5pt; line-height: 1.35;
       color: #1d2733; margin: 0 auto; max-width: 182mm; }
h1 { font-size: 20pt; margin: 0 0 2pt; }
h2 { font-size: 15pt; margin: 14pt 0 4pt; border-bottom: 2px solid #1d2733; }
h3 { font-size: 12pt; margin: 14pt 0 2pt; }
h4 { font-size: 10pt; margin: 8pt 0 3pt; text-transform: uppercase; letter-spacing: 0.04em; color: #4a5663; }
h5 { font-size: 10pt; margin: 6pt 0 3pt; }
h2, h3, h4, h5, p.lead { break-after: avoid; }
.subtitle { font-size: 12pt; color: #4a5663; margin: 0 0 10pt; }
.meta, .target-id, .source, .readings, small { color: #4a5663; font-size: 8.5pt; }
table { border-collapse: collapse; width: 100%; margin: 3pt 0 6pt; font-size: 8.5pt; }
th, td { border-bottom: 1px solid #d5dbe2; padding: 2pt 4pt; text-align: left; vertical-align: top; }
thead th { border-bottom: 1.5px solid #1d2733; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tr, .target, svg { break-inside: avoid; }
.summary td, .summary th { font-size: 7.5pt; padding: 1.5pt 2.5pt; }
.summary td.num { white-space: nowrap; }
.summary td:first-child { width: 36%; }
.summary td.zero { color: #b0b8c1; }
.summary th.group { text-align: center; border-bottom: 1px solid #9aa5b1; }
.summary tr.pillar th { background: #eef2f6; font-size: 8pt; }
.times th, .times td { text-align: left; width: 20%; }
.area { break-before: page; }
ol.contents { columns: 2; column-gap: 10mm; margin: 2pt 0; }
.goal { border-top: 1.5px solid #9aa5b1; margin-top: 12pt; }
.goal-no { color: #4a5663; margin-right: 4pt; }
.pill { display: inline-block; padding: 0 5pt; border-radius: 6pt; font-size: 8pt; color: #ffffff; white-space: nowrap; }
.green { background: #2e7d32; } .amber { background: #e8a800; color: #1d2733; } .red { background: #c62828; }
.unknown { background: #7a8594; } .impossible { background: #6a3d9a; }
.swatch { display: inline-block; width: 8pt; height: 8pt; margin-right: 3pt; vertical-align: -1pt; }
.strip { display: block; border: 1px solid #9aa5b1; }
.strip-axis { display: flex; justify-content: space-between; font-size: 8pt; color: #4a5663; }
.result { margin-left: 2pt; }
.target { border-left: 3px solid #9aa5b1; padding: 1pt 0 1pt 7pt; margin: 5pt 0 9pt; }
.target.result-positive { border-color: #2e7d32; } .target.result-lagging { border-color: #e8a800; }
.target.result-moved_away { border-color: #c62828; } .target.result-impossible { border-color: #6a3d9a; }
.target p { margin: 2pt 0; }
.target-body { display: flex; gap: 8pt; align-items: flex-start; }
.target-body svg { flex: none; }
.figures th { width: 22%; font-weight: normal; color: #4a5663; }
a { color: inherit; }
)css";

std::string counts_text(const ProgressCounts& c) {
  if (c.targets == 0) return "no targets";
  static constexpr std::array<std::pair<const char*, const char*>, kResultKinds> kWords{{
      {"positive result", "positive results"},
      {"lagging", "lagging"},
      {"moved away", "moved away"},
      {"impossible or postponed", "impossible or postponed"},
      {"not yet judged", "not yet judged"},
  }};
  std::string kinds;
  for (std::size_t k = 0; k < kResultKinds; ++k) {
    const int n = c.by_result[k];
    if (n > 0)
      kinds += (kinds.empty() ? "" : ", ") + std::to_string(n) + " " + (n == 1 ? kWords[k].first : kWords[k].second);
  }
  return std::to_string(c.targets) + (c.targets == 1 ? " target: " : " targets: ") + kinds;
}

const ProgressCounts& counts_of(const std::map<int, ProgressCounts>& m, int goal) {
  static const ProgressCounts none;
  auto it = m.find(goal);
  return it == m.end() ? none : it->second;
}

// The cover up to the contents, which the caller adds and closes the <header> after.
std::string cover_html(const ProgressReport& report) {
  const auto& d = report.data;
  const auto length = d.to_ms - d.from_ms;
  std::string out =
      "<header class=\"cover\"><h1>Strategy progress report</h1><p class=\"subtitle\">The "
      "Integrated Foreign and Security Strategy (GBVS) 2018-2022, from " +
      date_text(d.from_ms) + " to " + date_text(d.to_ms) + "</p>";
  out += "<p>The period runs from " + date_text(d.from_ms) + " 00:00 to " + date_text(d.to_ms) +
         " 00:00 UTC. The operational picture of each goal is what the board showed in it, from the status "
         "history and the alarms the aggregator kept; the targets are assessed at the end of the period from the "
         "ministry's figures, their trends measured over the period. The two are reported side by side and never "
         "mixed: a goal can be green on the board while its targets lag.</p>";
  out += "<h2>The " + std::to_string(report.catalogue->goals().size()) +
         " goals at a glance</h2><table class=\"summary\"><thead><tr><th rowspan=\"2\">Goal</th><th colspan=\"5\" "
         "class=\"group\">Time on the board</th><th rowspan=\"2\" class=\"num\">Alarms</th><th colspan=\"" +
         std::to_string(kResultKinds) + "\" class=\"group\">Targets</th></tr><tr>";
  for (auto s : kBoardStateOrder) out += "<th class=\"num\">" + state_heading(s) + "</th>";
  for (std::size_t k = 0; k < kResultKinds; ++k)
    out += "<th class=\"num\">" + std::string(result_heading(static_cast<ResultKind>(k))) + "</th>";
  out += "</tr></thead><tbody>";
  for (const auto& p : report.catalogue->pillars()) {
    out += "<tr class=\"pillar\"><th colspan=\"" + std::to_string(7 + kResultKinds) + "\">Pillar " +
           html_escaped(p.name) + (p.name_nl.empty() ? "" : " (" + html_escaped(p.name_nl) + ")") + "</th></tr>";
    for (int id : p.goals) {
      const auto* g = report.catalogue->find_goal(id);
      const auto& ops = d.goals.at(id);
      out += "<tr><td>" + std::to_string(id) + ". " + html_escaped(g->name) + "</td>";
      for (auto s : kBoardStateOrder)
        out += "<td class=\"num\">" + percent_text(ops.history.time_in(s), length) + "</td>";
      out += std::string(ops.alarms.empty() ? "<td class=\"num zero\">" : "<td class=\"num\">") +
             std::to_string(ops.alarms.size()) + "</td>";
      const auto& c = counts_of(report.progress.by_goal, id);
      for (std::size_t k = 0; k < kResultKinds; ++k)
        out += std::string(c.by_result[k] ? "<td class=\"num\">" : "<td class=\"num zero\">") +
               std::to_string(c.by_result[k]) + "</td>";
      out += "</tr>";
    }
  }
  out += "</tbody></table><p><b>All targets.</b> " + counts_text(report.progress.all) + ".</p>";
  return out;
}

// A result area's goals: those the catalogue lists under it, and those of targets reported under it.
std::vector<int> goals_of_area(const ProgressReport& report, const Threat& area) {
  std::set<int> goals(area.goals.begin(), area.goals.end());
  for (const auto& a : report.progress.targets)
    if (std::count(a.target->threats.begin(), a.target->threats.end(), area.id)) goals.insert(a.target->goal);
  return {goals.begin(), goals.end()};
}

std::string other_alarms_html(const ProgressReport& report) {
  const auto& alarms = report.data.other_alarms;
  std::string out = "<h2 id=\"other-alarms\">Alarms of no goal</h2>";
  if (alarms.empty()) return out + "<p>None in the period.</p>";
  std::map<std::string, std::pair<int, std::set<std::string>>> by_kind;
  for (const auto& a : alarms) {
    auto& [count, posts] = by_kind[a.kind];
    ++count;
    if (!a.post.empty()) posts.insert(a.post);
  }
  out +=
      "<p>Silent posts, the store and agents' clocks: open in the period, by kind.</p><table><thead><tr><th>Kind"
      "</th><th class=\"num\">Alarms</th><th>Posts</th></tr></thead><tbody>";
  for (const auto& [kind, v] : by_kind) {
    std::string posts;
    for (const auto& p : v.second) posts += (posts.empty() ? "" : ", ") + html_escaped(p);
    out += "<tr><td>" + html_escaped(kind) + "</td><td class=\"num\">" + std::to_string(v.first) + "</td><td>" + posts +
           "</td></tr>";
  }
  return out + "</tbody></table>";
}

constexpr const char* kMethod =
    "<h2 id=\"method\">How this report is made</h2><p>Generated by postwatch-report from one aggregator store and "
    "the catalogue, with nothing else: the same store and period give the same report. Times are UTC.</p><p><b>Time "
    "in each status</b>: the aggregator records every goal's status on each change and at least once a minute; a "
    "record holds until the next one, for at most five minutes. Time no record covers (the aggregator was not "
    "running, or the history was pruned after 400 days) is <i>no record</i>. An episode is an unbroken run of amber "
    "or red; the worst are those that reached red, then the longest. Alarms are those open at any time in the "
    "period.</p><p><b>Targets</b>: the trajectory rule of docs/strategy-progress.md, from the ministry's figures "
    "dated up to the end of the period; the trend is the least-squares slope of the readings in the period. "
    "Positive results: achieved, on track, done. Lagging: improving too slowly, stagnating, a milestone past its "
    "date. Moved away: moving away from the target. Impossible or postponed: postponed, cancelled. Not yet judged: "
    "no data, or planned.</p>";

}  // namespace

ProgressReport make_progress_report(const IndicatorCatalogue& catalogue, const TargetCatalogue& targets,
                                    ReportData data) {
  ProgressReport out;
  out.catalogue = &catalogue;
  out.targets = &targets;
  out.progress = assess_strategy(targets, data.readings, data.from_ms, data.to_ms);
  out.data = std::move(data);
  return out;
}

std::string render_report_html(const ProgressReport& report) {
  const auto& cat = *report.catalogue;
  std::string body, contents;
  std::map<int, std::pair<std::string, std::string>> picture_at;  // goal -> where its picture is shown

  auto goal_section = [&](int id, const std::string& area_id, const std::string& area_title,
                          const std::function<bool(const StrategyTarget&)>& listed) {
    GoalSection s;
    s.goal = cat.find_goal(id);
    if (!s.goal) return std::string();
    s.anchor = area_id + "-goal-" + std::to_string(id);
    for (const auto& a : report.progress.targets)
      if (a.target->goal == id && listed(*a.target)) s.targets.push_back(&a);
    if (auto it = picture_at.find(id); it != picture_at.end())
      std::tie(s.picture_anchor, s.picture_title) = it->second;
    else
      picture_at[id] = {s.anchor, area_title};
    return goal_section_html(report, s);
  };

  for (const auto& area : cat.threats()) {
    const auto goals = goals_of_area(report, area);
    std::string list;
    for (int g : goals) list += (list.empty() ? "" : ", ") + std::to_string(g);
    auto it = report.progress.by_threat.find(area.id);
    body += "<section class=\"area\" id=\"area-" + html_escaped(area.id) +
            "\"><h2>Result area: " + html_escaped(area.name) + "</h2><p class=\"meta\">Goals " + list +
            ". Targets reported under it: " +
            (it == report.progress.by_threat.end() ? std::string("none") : counts_text(it->second)) + ".</p>";
    for (int g : goals)
      body += goal_section(g, area.id, area.name, [&](const StrategyTarget& t) {
        return std::count(t.threats.begin(), t.threats.end(), area.id) > 0;
      });
    body += "</section>";
    contents += "<li><a href=\"#area-" + html_escaped(area.id) + "\">" + html_escaped(area.name) + "</a></li>";
  }

  // Goals in no result area, and targets reported under none, so that every goal and target appears.
  std::set<int> rest;
  for (const auto& g : cat.goals())
    if (!picture_at.count(g.id)) rest.insert(g.id);
  for (const auto& a : report.progress.targets)
    if (a.target->threats.empty()) rest.insert(a.target->goal);
  if (!rest.empty()) {
    body +=
        "<section class=\"area\" id=\"area-none\"><h2>Outside the result areas</h2><p class=\"meta\">Goals the "
        "catalogue lists under no result area, and targets reported under none.</p>";
    for (int g : rest)
      body += goal_section(g, "none", "no result area", [](const StrategyTarget& t) { return t.threats.empty(); });
    body += "</section>";
    contents += "<li><a href=\"#area-none\">Outside the result areas</a></li>";
  }
  contents +=
      "<li><a href=\"#other-alarms\">Alarms of no goal</a></li><li><a href=\"#method\">How this report is "
      "made</a></li>";

  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Strategy progress report " +
         date_text(report.data.from_ms) + " to " + date_text(report.data.to_ms) + "</title><style>" + kStyle +
         "</style></head><body>" + cover_html(report) + "<h2>Contents</h2><ol class=\"contents\">" + contents +
         "</ol></header>" + body + "<section class=\"closing\">" + other_alarms_html(report) + kMethod +
         "</section></body></html>\n";
}

}  // namespace postwatch::aggregator
