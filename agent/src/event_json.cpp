#include "postwatch/agent/event_json.hpp"

#include <nlohmann/json.hpp>

namespace postwatch::agent {
using nlohmann::json;

std::string parse_event_json(std::string_view text, const IndicatorCatalogue& catalogue, IndicatorEvent& out) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return "not valid JSON";
  if (!j.is_object()) return "expected a JSON object";
  for (const auto& [key, _] : j.items())
    if (key != "indicator" && key != "value" && key != "observed_at_ms" && key != "note" && key != "tags")
      return "unknown field '" + key + "'";
  auto ind_it = j.find("indicator");
  if (ind_it == j.end() || !ind_it->is_string()) return "missing string field 'indicator'";
  out = IndicatorEvent{};
  out.indicator = ind_it->get<std::string>();
  const Indicator* ind = catalogue.find_indicator(out.indicator);
  if (!ind) return "unknown indicator '" + out.indicator + "'";
  out.kind = ind->kind;
  auto v = j.find("value");
  if (v == j.end()) return "missing field 'value'";
  if (ind->kind == ValueKind::Text) {
    if (!v->is_string()) return "indicator '" + ind->id + "' takes a text value";
    out.text = v->get<std::string>();
  } else if (v->is_boolean()) {
    if (ind->kind != ValueKind::Boolean) return "indicator '" + ind->id + "' takes a number, not true/false";
    out.number = v->get<bool>() ? 1 : 0;
  } else if (v->is_number()) {
    out.number = v->get<double>();
  } else {
    return "field 'value' must be a number" + std::string(ind->kind == ValueKind::Boolean ? " or true/false" : "");
  }
  if (auto t = j.find("observed_at_ms"); t != j.end()) {
    if (!t->is_number_integer() || t->get<std::int64_t>() <= 0) return "observed_at_ms must be a positive integer";
    out.observed_at_ms = t->get<std::int64_t>();
  }
  if (auto n = j.find("note"); n != j.end()) {
    if (!n->is_string()) return "note must be a string";
    out.note = n->get<std::string>();
  }
  if (auto tags = j.find("tags"); tags != j.end()) {
    if (!tags->is_object()) return "tags must be an object of strings";
    for (const auto& [k, tv] : tags->items()) {
      if (!tv.is_string()) return "tag '" + k + "' must be a string";
      out.tags.emplace_back(k, tv.get<std::string>());
    }
  }
  return {};
}

}  // namespace postwatch::agent
