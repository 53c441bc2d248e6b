// The report's CSV: the figures behind every target, for a spreadsheet.
#include "report/progress_report.hpp"

#include "postwatch/csv_field.hpp"
#include "report/report_format.hpp"

namespace postwatch::aggregator {

using postwatch::csv_field;
using report::csv_number;
using report::date_text;

std::string render_report_csv(const ProgressReport& report) {
  std::string out =
      "id,goal,threats,kind,status,result,baseline,current,target,by,progress,trend_per_year,required_per_year\n";
  for (const auto& a : report.progress.targets) {
    const auto& t = *a.target;
    std::string threats;
    for (const auto& th : t.threats) threats += (threats.empty() ? "" : ";") + th;
    // A milestone has no figures; its due date is when it is due, as a figure's target date is.
    const auto by_ms = t.kind == TargetKind::Milestone ? t.due_ms : t.by_ms;
    const auto& p = a.progress;
    out += csv_field(t.id) + ',' + std::to_string(t.goal) + ',' + csv_field(threats) + ',' +
           std::string(to_string(t.kind)) + ',' + csv_field(a.status) + ',' + std::string(to_string(a.result)) + ',' +
           csv_number(t.baseline ? std::optional(t.baseline->value) : std::nullopt) + ',' + csv_number(p.current) +
           ',' + csv_number(t.target) + ',' + (by_ms ? date_text(by_ms) : "") + ',' + csv_number(p.progress) + ',' +
           csv_number(p.trend_per_year) + ',' + csv_number(p.required_per_year) + '\n';
  }
  return out;
}

}  // namespace postwatch::aggregator
