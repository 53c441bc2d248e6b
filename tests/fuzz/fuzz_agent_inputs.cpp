// libFuzzer: what post staff and local tools hand the agent: drop-directory files (JSON lines
// and CSV) and local-API request lines. The first byte picks the input; the rest is the text.
// Whatever comes in, every event that gets through must pass the agent's own validation, a
// file's events and lines must match up, and every local-API answer must be JSON with one
// result per event asked for.
#include "postwatch/agent/agent.hpp"
#include "postwatch/agent/event_file.hpp"
#include "postwatch/agent/local_api.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string_view>

using namespace postwatch;

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "agent inputs: %s\n", what);
  __builtin_trap();
}

const auto catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(POSTWATCH_FUZZ_CATALOGUE));
std::size_t submitted = 0;
bool submitted_invalid = false;

agent::LocalApiServer& local_api() {
  static agent::LocalApiServer server(
      agent::LocalApiConfig{true, "/nonexistent/agent.sock", 0660, 64}, catalogue,
      [](IndicatorEvent e) {
        if (!agent::validate_event(*catalogue, e).empty()) submitted_invalid = true;
        return agent::SubmitResult{true, ++submitted, ""};
      },
      std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>()));
  return server;
}

void check_file(std::string_view text, agent::EventFileFormat format) {
  auto parsed = agent::parse_event_lines(text, format, *catalogue);
  if (parsed.events.size() != parsed.lines.size()) broken("events and their lines do not match up");
  for (const auto& e : parsed.events)
    if (!agent::validate_event(*catalogue, e).empty()) broken("a parsed file event fails validate_event");
  for (const auto& err : parsed.errors)
    if (err.message.empty()) broken("an error without a message");
}

void check_request(std::string_view line) {
  auto before = submitted;
  auto answer = nlohmann::json::parse(local_api().answer(line), nullptr, false);
  if (!answer.is_object() || !answer["results"].is_array()) broken("the answer is not {\"results\": [...]}");
  if (submitted_invalid) broken("the local API submitted an event that fails validate_event");
  std::size_t accepted = 0;
  for (const auto& r : answer["results"]) {
    if (!r.is_object() || !r["accepted"].is_boolean()) broken("a result without \"accepted\"");
    if (r["accepted"].get<bool>())
      ++accepted;
    else if (!r["error"].is_string() || r["error"].get<std::string>().empty())
      broken("a refusal without a reason");
  }
  if (accepted != submitted - before) broken("accepted results differ from the events submitted");
  auto request = nlohmann::json::parse(line, nullptr, false);
  if (!answer.contains("error")) {
    std::size_t asked = request.is_array() ? request.size() : 1;
    if (request.is_discarded() || answer["results"].size() != asked) broken("not one result per event asked for");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: check_file(text, agent::EventFileFormat::JsonLines); break;
    case 1: check_file(text, agent::EventFileFormat::Csv); break;
    default: check_request(text); break;
  }
  return 0;
}
