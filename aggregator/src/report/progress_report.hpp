// The strategy progress report (docs/strategy-progress.md, "The progress report"), organised
// like the interim report of April 2020: a cover with the period and a summary of the 13 goals,
// then per result area (threat) its goals, each with its operational picture over the period
// and its targets sorted into the kinds of result. Written as one self-contained HTML document
// (inline CSS and SVG, no script, no external resource; it prints to A4) and a CSV of the
// targets' figures. Generated from the store alone: the same store and period give the same
// bytes.
#pragma once

#include "postwatch/catalogue.hpp"
#include "progress/strategy_progress.hpp"
#include "progress/target_catalogue.hpp"
#include "report/report_data.hpp"

#include <string>

namespace postwatch::aggregator {

struct ProgressReport {
  const IndicatorCatalogue* catalogue = nullptr;
  const TargetCatalogue* targets = nullptr;
  ReportData data;
  StrategyProgress progress;  // every target at the end of the period, its trend over the period
};

// The catalogues must outlive the report (it points into them).
ProgressReport make_progress_report(const IndicatorCatalogue& catalogue, const TargetCatalogue& targets,
                                    ReportData data);

std::string render_report_html(const ProgressReport& report);
// One row per target, in catalogue order: id, goal, threats, kind, status, result, baseline,
// current, target, by, progress, trend_per_year, required_per_year.
std::string render_report_csv(const ProgressReport& report);

}  // namespace postwatch::aggregator
