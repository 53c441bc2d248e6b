#include "postwatch/agent/event_file.hpp"

#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/event_json.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace postwatch::agent {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string parse_csv_event(const std::vector<std::string>& f, const IndicatorCatalogue& catalogue,
                            IndicatorEvent& out) {
  if (f.size() < 2 || f.size() > 4)
    return "expected 2 to 4 columns (indicator,value[,observed_at_ms][,note]), got " + std::to_string(f.size());
  out = IndicatorEvent{};
  out.indicator = std::string(trim(f[0]));
  const Indicator* ind = catalogue.find_indicator(out.indicator);
  if (!ind) return "unknown indicator '" + out.indicator + "'";
  if (auto err = parse_value_text(*ind, f[1], out); !err.empty()) return err;
  if (f.size() >= 3 && !trim(f[2]).empty()) {
    auto t = trim(f[2]);
    std::int64_t ms = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), ms);
    if (ec != std::errc() || end != t.data() + t.size() || ms <= 0)
      return "observed_at_ms '" + std::string(t) + "' must be a positive integer (milliseconds since 1970)";
    out.observed_at_ms = ms;
  }
  if (f.size() == 4) out.note = f[3];
  return validate_event(catalogue, out);
}

}  // namespace

EventFileFormat event_file_format(const std::filesystem::path& file) {
  auto ext = lower(file.extension().string());
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") return EventFileFormat::JsonLines;
  if (ext == ".csv") return EventFileFormat::Csv;
  return EventFileFormat::Unknown;
}

std::string parse_value_text(const Indicator& ind, std::string_view raw, IndicatorEvent& out) {
  out.kind = ind.kind;
  if (ind.kind == ValueKind::Text) {
    out.text = std::string(raw);
    return out.text.empty() ? "indicator '" + ind.id + "' needs a non-empty text" : "";
  }
  auto text = trim(raw);
  if (ind.kind == ValueKind::Boolean && (text == "true" || text == "false")) {
    out.number = text == "true" ? 1 : 0;
    return {};
  }
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v))
    return "value '" + s + "' is not a number" + std::string(ind.kind == ValueKind::Boolean ? " or true/false" : "") +
           " (indicator '" + ind.id + "')";
  out.number = v;
  return {};
}

std::string split_csv_line(std::string_view line, std::vector<std::string>& fields) {
  fields.clear();
  std::string field;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"' && std::all_of(field.begin(), field.end(), [](unsigned char ch) { return std::isspace(ch); })) {
      field.clear();
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else if (c == '\r' && i + 1 == line.size()) {
      // Windows line ending
    } else {
      if (was_quoted && !std::isspace(static_cast<unsigned char>(c)))
        return "text after a closing quote in column " + std::to_string(fields.size() + 1);
      if (!was_quoted) field += c;
    }
  }
  if (quoted) return "unclosed quote in column " + std::to_string(fields.size() + 1);
  fields.push_back(std::move(field));
  return {};
}

std::string parse_checked_event_json(std::string_view text, const IndicatorCatalogue& catalogue, IndicatorEvent& out) {
  if (auto err = parse_event_json(text, catalogue, out); !err.empty()) return err;
  return validate_event(catalogue, out);
}

ParsedEvents parse_event_lines(std::string_view text, EventFileFormat format, const IndicatorCatalogue& catalogue) {
  ParsedEvents out;
  if (format == EventFileFormat::Unknown) {
    out.errors.push_back({0, "unknown file type: name it .jsonl, .ndjson, .json (JSON lines) or .csv"});
    return out;
  }
  std::size_t line_no = 0;
  std::vector<std::string> fields;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    auto body = trim(line);
    if (body.empty() || body.front() == '#') continue;
    if (line_no == 1 && body.size() >= 3 && static_cast<unsigned char>(body[0]) == 0xEF &&
        static_cast<unsigned char>(body[1]) == 0xBB && static_cast<unsigned char>(body[2]) == 0xBF)
      body.remove_prefix(3);  // UTF-8 byte-order mark from spreadsheet exports
    IndicatorEvent ev;
    std::string err;
    if (format == EventFileFormat::JsonLines) {
      err = parse_checked_event_json(body, catalogue, ev);
    } else {
      err = split_csv_line(body, fields);
      if (err.empty() && out.events.empty() && out.errors.empty() && !fields.empty() &&
          lower(std::string(trim(fields[0]))) == "indicator")
        continue;  // header
      if (err.empty()) err = parse_csv_event(fields, catalogue, ev);
    }
    if (!err.empty()) {
      out.errors.push_back({line_no, std::move(err)});
    } else {
      out.events.push_back(std::move(ev));
      out.lines.push_back(line_no);
    }
  }
  return out;
}

}  // namespace postwatch::agent
