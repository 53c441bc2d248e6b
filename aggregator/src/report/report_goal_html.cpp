// A goal's section of the report: its operational picture over the period (the status strip,
// the time in each status, the worst episodes, the alarms) and its targets under the interim
// report's kinds of result.
#include "report/report_format.hpp"
#include "report/report_html.hpp"
#include "report/report_svg.hpp"

#include <algorithm>
#include <array>

namespace postwatch::aggregator::report {

namespace {

constexpr std::size_t kAlarmsListed = 10;    // per goal; the rest are counted
constexpr std::size_t kReadingsListed = 12;  // per target, the latest; the chart shows them all

// The order of the headings, as the interim report lists them, and "not yet judged" last.
constexpr std::array<ResultKind, kResultKinds> kResultOrder{
    ResultKind::Positive, ResultKind::Lagging, ResultKind::MovedAway, ResultKind::Impossible, ResultKind::Open};

std::string with_unit(std::optional<double> v, const std::string& unit) {
  auto text = number_text(v);
  return v && !unit.empty() ? text + " " + html_escaped(unit) : text;
}

std::string row(std::string_view head, const std::string& value) {
  return "<tr><th>" + std::string(head) + "</th><td>" + value + "</td></tr>";
}

std::string picture_html(const ProgressReport& report, int goal) {
  const auto& ops = report.data.goals.at(goal);
  const auto& h = ops.history;
  const auto length = report.data.to_ms - report.data.from_ms;
  std::string out = "<h4>Operational picture</h4>" + status_strip_svg(h, goal) + "<div class=\"strip-axis\"><span>" +
                    date_text(report.data.from_ms) + "</span><span>" + date_text(report.data.to_ms) + "</span></div>";
  out += "<table class=\"times\"><tr>";
  for (auto s : kBoardStateOrder)
    out += "<th><span class=\"swatch\" style=\"background:" + std::string(state_colour(s)) + "\"></span>" +
           state_heading(s) + "</th>";
  out += "</tr><tr>";
  for (auto s : kBoardStateOrder)
    out += "<td>" + percent_text(h.time_in(s), length) + "<br><small>" + duration_text(h.time_in(s)) + "</small></td>";
  out += "</tr></table>";

  if (h.episodes == 0) {
    out += "<p>Never amber or red in the period.</p>";
  } else {
    out += "<p class=\"lead\">Amber or red " + std::to_string(h.episodes) + (h.episodes == 1 ? " time" : " times") +
           " in the period" + (h.episodes > h.worst_episodes.size() ? "; the worst:" : ":") + "</p>";
    out +=
        "<table class=\"episodes\"><thead><tr><th>Worst status</th><th>From</th><th>To</th><th "
        "class=\"num\">Lasted</th></tr></thead><tbody>";
    for (const auto& e : h.worst_episodes)
      out += "<tr><td><span class=\"pill " + std::string(to_string(e.worst)) + "\">" + std::string(to_string(e.worst)) +
             "</span></td><td>" + minute_text(e.start_ms) + "</td><td>" + minute_text(e.end_ms) +
             (e.ongoing ? " (still at the end)" : "") + "</td><td class=\"num\">" + duration_text(e.duration_ms()) +
             "</td></tr>";
    out += "</tbody></table>";
  }

  if (ops.alarms.empty()) {
    out += "<p>No alarm in the period.</p>";
    return out;
  }
  out += "<p class=\"lead\">" + std::to_string(ops.alarms.size()) + (ops.alarms.size() == 1 ? " alarm" : " alarms") +
         " open in the period" +
         (ops.alarms.size() > kAlarmsListed ? "; the first " + std::to_string(kAlarmsListed) : "") + ":</p>";
  out +=
      "<table class=\"alarms\"><thead><tr><th>Alarm</th><th>Raised</th><th>Cleared</th><th>Worst level</th>"
      "<th>Posts</th><th>Acknowledged by</th></tr></thead><tbody>";
  for (std::size_t i = 0; i < ops.alarms.size() && i < kAlarmsListed; ++i) {
    const auto& a = ops.alarms[i];
    std::string posts;
    for (const auto& p : a.cause_posts) posts += (posts.empty() ? "" : ", ") + html_escaped(p);
    out += "<tr><td>#" + std::to_string(a.id) + "</td><td>" + minute_text(a.raised_at_ms) + "</td><td>" +
           (a.cleared_at_ms ? minute_text(a.cleared_at_ms) : "still open") + "</td><td><span class=\"pill " +
           html_escaped(a.worst_level) + "\">" + html_escaped(a.worst_level) + "</span></td><td>" + posts +
           "</td><td>" + html_escaped(a.acked_by) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

std::string figures_html(const ProgressReport& report, const TargetAssessment& a) {
  const auto& t = *a.target;
  const auto& p = a.progress;
  std::string rows;
  if (t.kind == TargetKind::Ratio)
    rows += row("Computed as", html_escaped(t.ratio.numerator) + " / " + html_escaped(t.ratio.denominator) +
                                   (t.ratio.factor != 1 ? " × " + number_text(t.ratio.factor) : ""));
  rows += row("Now", p.current ? with_unit(p.current, t.unit) + " (" + date_text(a.readings.back().at_ms) + ")"
                               : "no reading yet");
  rows += row("Baseline", t.baseline ? with_unit(t.baseline->value, t.unit) + " (" + date_text(t.baseline->at_ms) + ")"
                                     : "none: " + html_escaped(t.baseline_note));
  rows += row("Target", with_unit(t.target, t.unit) + (t.by_ms ? " by " + date_text(t.by_ms) : " (ongoing)") + ", " +
                            (t.higher_is_better ? "higher is better" : "lower is better"));
  if (p.progress) rows += row("Progress", number_text(*p.progress * 100, 0) + " % of the way from the baseline");
  rows += row("Trend",
              p.trend_per_year
                  ? number_text(p.trend_per_year) + " a year over the period (" + std::to_string(p.points) + " points)"
                  : "none (" + std::to_string(p.points) + " point" + (p.points == 1 ? "" : "s") + " in the period)");
  if (p.required_per_year) rows += row("Needed", number_text(p.required_per_year) + " a year");
  std::string out = "<div class=\"target-body\">" + target_chart_svg(a, report.data.from_ms, report.data.to_ms) +
                    "<table class=\"figures\">" + rows + "</table></div>";
  if (!a.readings.empty()) {
    out += "<p class=\"readings\">Readings";
    const auto first = a.readings.size() > kReadingsListed ? a.readings.size() - kReadingsListed : 0;
    if (first > 0) out += " (the latest " + std::to_string(kReadingsListed) + ")";
    out += ": ";
    for (auto i = first; i < a.readings.size(); ++i)
      out += (i > first ? " · " : "") + date_text(a.readings[i].at_ms) + ": " + number_text(a.readings[i].value, 4);
    out += "</p>";
  }
  return out;
}

std::string target_html(const ProgressReport& report, const TargetAssessment& a, const std::string& anchor) {
  const auto& t = *a.target;
  std::string areas;
  for (const auto& id : t.threats) {
    std::string name = id;
    for (const auto& th : report.catalogue->threats())
      if (th.id == id) name = th.name;
    areas += (areas.empty() ? "" : ", ") + html_escaped(name);
  }
  std::string out = "<div class=\"target result-" + std::string(to_string(a.result)) + "\" id=\"" + anchor +
                    "-target-" + html_escaped(t.id) + "\"><p class=\"target-head\"><span class=\"pill " +
                    std::string(result_colour(a.result)) + "\">" + std::string(status_words(a.status)) +
                    "</span> <strong>" + html_escaped(t.commitment) + "</strong></p><p class=\"target-id\">" +
                    html_escaped(t.id) + " · " + std::string(to_string(t.kind));
  if (t.kind == TargetKind::Milestone) out += t.due_ms ? " · due " + date_text(t.due_ms) : " · no date";
  out += areas.empty() ? " · in no result area" : " · result areas: " + areas;
  out += "</p>";
  if (t.kind == TargetKind::Milestone) {
    if (!t.state_note.empty()) out += "<p>" + html_escaped(t.state_note) + "</p>";
  } else {
    out += figures_html(report, a);
  }
  return out + "<p class=\"source\">Source: " + html_escaped(t.source) + "</p></div>";
}

std::string targets_html(const ProgressReport& report, const GoalSection& section) {
  std::string out = "<h4>Targets</h4>";
  if (section.targets.empty())
    return out + (report.progress.by_goal.count(section.goal->id)
                      ? "<p>None of this goal's targets is reported under this result area.</p>"
                      : "<p>The catalogue follows no target for this goal.</p>");
  for (auto kind : kResultOrder) {
    std::string items;
    for (const auto* a : section.targets)
      if (a->result == kind) items += target_html(report, *a, section.anchor);
    if (items.empty()) continue;
    out += "<section class=\"result result-" + std::string(to_string(kind)) + "\"><h5>" +
           std::string(result_heading(kind)) + "</h5>" + items + "</section>";
  }
  return out;
}

}  // namespace

std::string state_heading(BoardState s) {
  switch (s) {
    case BoardState::Green: return "Green";
    case BoardState::Amber: return "Amber";
    case BoardState::Red: return "Red";
    case BoardState::Unknown: return "Unknown";
    case BoardState::Unrecorded: break;
  }
  return "No record";
}

std::string_view status_words(std::string_view status) {
  if (status == "on_track") return "on track";
  if (status == "too_slow") return "improving, too slowly";
  if (status == "moving_away") return "moving away";
  if (status == "no_data") return "no data yet";
  return status;  // achieved, stagnating, planned, done, postponed, cancelled, overdue
}

std::string_view result_heading(ResultKind k) {
  switch (k) {
    case ResultKind::Positive: return "Positive results";
    case ResultKind::Lagging: return "Lagging";
    case ResultKind::MovedAway: return "Moved away";
    case ResultKind::Impossible: return "Impossible or postponed";
    case ResultKind::Open: break;
  }
  return "Not yet judged";
}

std::string_view result_colour(ResultKind k) {
  switch (k) {
    case ResultKind::Positive: return "green";
    case ResultKind::Lagging: return "amber";
    case ResultKind::MovedAway: return "red";
    case ResultKind::Impossible: return "impossible";
    case ResultKind::Open: break;
  }
  return "unknown";
}

std::string operations_line(const ProgressReport& report, int goal) {
  const auto& ops = report.data.goals.at(goal);
  const auto length = report.data.to_ms - report.data.from_ms;
  return "green " + percent_text(ops.history.time_in(BoardState::Green), length) + ", amber " +
         percent_text(ops.history.time_in(BoardState::Amber), length) + ", red " +
         percent_text(ops.history.time_in(BoardState::Red), length) + "; " + std::to_string(ops.alarms.size()) +
         (ops.alarms.size() == 1 ? " alarm" : " alarms");
}

std::string goal_section_html(const ProgressReport& report, const GoalSection& section) {
  const auto& g = *section.goal;
  std::string pillar = g.pillar, areas;
  for (const auto& p : report.catalogue->pillars())
    if (p.id == g.pillar) pillar = p.name;
  for (const auto& th : report.catalogue->threats())
    if (std::find(th.goals.begin(), th.goals.end(), g.id) != th.goals.end())
      areas += (areas.empty() ? "" : ", ") + html_escaped(th.name);
  std::string out = "<article class=\"goal\" id=\"" + section.anchor + "\"><h3><span class=\"goal-no\">Goal " +
                    std::to_string(g.id) + "</span> " + html_escaped(g.name) + "</h3><p class=\"meta\">Pillar " +
                    html_escaped(pillar) + " · " + (areas.empty() ? "in no result area" : "result areas: " + areas) +
                    "</p>";
  if (section.picture_anchor.empty())
    out += picture_html(report, g.id);
  else
    out += "<h4>Operational picture</h4><p>Shown under <a href=\"#" + section.picture_anchor + "\">" +
           html_escaped(section.picture_title) + "</a>: " + operations_line(report, g.id) + ".</p>";
  return out + targets_html(report, section) + "</article>";
}

}  // namespace postwatch::aggregator::report
