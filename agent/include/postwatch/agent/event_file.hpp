// Parsing events written by people and local tools: JSON lines and CSV (drop directory,
// local API). Every event is checked against the catalogue here, so a caller can refuse a whole
// file before ingesting any of it.
//
// CSV columns: indicator,value[,observed_at_ms][,note]. A first line starting "indicator," is a
// header. Fields may be quoted ("a, b" and "" for a quote). Blank lines and lines starting with
// '#' are skipped in both formats.
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::agent {

enum class EventFileFormat { JsonLines, Csv, Unknown };

// By extension: .jsonl, .ndjson, .json → JSON lines; .csv → CSV.
EventFileFormat event_file_format(const std::filesystem::path& file);

struct EventLineError {
  std::size_t line = 0;  // 1-based
  std::string message;
};

struct ParsedEvents {
  std::vector<IndicatorEvent> events;
  std::vector<std::size_t> lines;  // the line each event came from
  std::vector<EventLineError> errors;
  bool ok() const { return errors.empty(); }
};

ParsedEvents parse_event_lines(std::string_view text, EventFileFormat format, const IndicatorCatalogue& catalogue);

// One JSON event, fully checked (fields, kind, range). Empty on success.
std::string parse_checked_event_json(std::string_view text, const IndicatorCatalogue& catalogue, IndicatorEvent& out);

// A value for `indicator` written as text (CSV field, script output): a number, true/false for
// booleans, the text itself for text indicators. Empty on success.
std::string parse_value_text(const Indicator& indicator, std::string_view text, IndicatorEvent& out);

// Splits one CSV line into fields; empty on success, otherwise what is wrong (unclosed quote).
std::string split_csv_line(std::string_view line, std::vector<std::string>& fields);

}  // namespace postwatch::agent
