// postwatch-store: reads an aggregator's store (docs/aggregator.md, "The store") without
// writing to it, also while the aggregator runs.
//
//   postwatch-store events STORE [--post P] [--agent A] [--indicator I] [--format csv|jsonl]
//   postwatch-store check STORE
//
// STORE is the store file or the aggregator's --data-dir. `events` prints every stored event
// that matches, in stored order; `check` reads every record and says which are damaged.
// Exit status: 0 done (check: every record intact), 1 a damaged record (check) or the store
// cannot be read, 2 usage.
#include "feed/http_helpers.hpp"
#include "store/store_reader.hpp"

#include <fmt/format.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

constexpr const char* kUsage =
    "usage: postwatch-store events STORE [--post P] [--agent A] [--indicator I] [--format csv|jsonl]\n"
    "       postwatch-store check STORE\n"
    "STORE: the store file (postwatch.sqlite) or the aggregator's --data-dir\n";

fs::path store_file(const fs::path& given) {
  std::error_code ec;
  return fs::is_directory(given, ec) ? given / "postwatch.sqlite" : given;
}

void report_damaged(const StoreScan& scan) {
  for (const auto& d : scan.damaged)
    std::fprintf(stderr,
                 "postwatch-store: record %lld (post '%s', agent '%s', seqs %llu-%llu) is damaged (%s): %u of its %u "
                 "event(s) cannot be read\n",
                 static_cast<long long>(d.id), d.post.c_str(), d.agent.c_str(),
                 static_cast<unsigned long long>(d.first_seq), static_cast<unsigned long long>(d.last_seq),
                 d.problem.c_str(), d.events_lost, d.events);
}

std::string csv_line(const StoredEventRow& r) {
  return fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(r.post), csv_field(r.agent), r.seq,
                     csv_field(r.indicator), to_string(r.kind),
                     r.kind == ValueKind::Text ? "" : fmt::format("{}", r.number), csv_field(r.text),
                     iso_utc(r.observed_at_ms), r.observed_at_ms, r.received_at_ms, r.late ? 1 : 0,
                     r.clock_correction_ms, to_string(r.refused));
}

std::string json_line(const StoredEventRow& r) {
  nlohmann::json j{{"post", r.post},
                   {"agent", r.agent},
                   {"seq", r.seq},
                   {"indicator", r.indicator},
                   {"kind", to_string(r.kind)},
                   {"observed_at_ms", r.observed_at_ms},
                   {"received_at_ms", r.received_at_ms},
                   {"late", r.late},
                   {"clock_correction_ms", r.clock_correction_ms}};
  if (r.kind == ValueKind::Text)
    j["text"] = r.text;
  else
    j["number"] = r.number;
  if (r.refused != EventRefusal::None) j["refused"] = to_string(r.refused);
  return j.dump() + "\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string command, store, format = "csv";
  StoredEventFilter filter;
  po::options_description named("options");
  named.add_options()("help,h", "this help")("post", po::value(&filter.post), "only this post's events")(
      "agent", po::value(&filter.agent), "only this agent's events (an agent id, e.g. gw-1)")(
      "indicator", po::value(&filter.indicator), "only this indicator's events")(
      "format", po::value(&format)->default_value(format), "events: csv (with a header line) or jsonl");
  po::options_description all;
  all.add(named).add_options()("command", po::value(&command))("store", po::value(&store));
  po::positional_options_description pos;
  pos.add("command", 1).add("store", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "postwatch-store: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << kUsage << named << "\n";
    return 0;
  }
  if ((command != "events" && command != "check") || store.empty()) {
    std::cerr << (command.empty() ? std::string("postwatch-store: a command is needed")
                  : store.empty() ? "postwatch-store: which store? (a file or a --data-dir)"
                                  : "postwatch-store: unknown command '" + command + "'")
              << "\n"
              << kUsage;
    return 2;
  }
  if (format != "csv" && format != "jsonl") {
    std::cerr << "postwatch-store: --format must be csv or jsonl, not '" << format << "'\n";
    return 2;
  }
  try {
    StoreReader reader(store_file(store));
    if (command == "check") {
      auto scan = reader.scan({}, [](const StoredEventRow&) {});
      report_damaged(scan);
      std::printf("%s: %llu record(s), %llu event(s) read, %zu damaged record(s)\n", store_file(store).c_str(),
                  static_cast<unsigned long long>(scan.records), static_cast<unsigned long long>(scan.events),
                  scan.damaged.size());
      return scan.damaged.empty() ? 0 : 1;
    }
    if (format == "csv")
      std::fputs(
          "post,agent,seq,indicator,kind,number,text,observed_at,observed_at_ms,received_at_ms,late,clock_correction_"
          "ms,"
          "refused\n",
          stdout);
    auto scan = reader.scan(filter, [&](const StoredEventRow& r) {
      const auto line = format == "csv" ? csv_line(r) : json_line(r);
      std::fwrite(line.data(), 1, line.size(), stdout);
    });
    report_damaged(scan);  // the readable events were printed; say what was not
    if (std::fflush(stdout) != 0) {
      std::perror("postwatch-store: writing the events");
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-store: " << e.what() << "\n";
    return 1;
  }
}
