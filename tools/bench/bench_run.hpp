// What a benchmark with phases holds through its run (a work folder, the catalogue, a logger
// that shows warnings only, the report), and how the report ends: on stdout and in --json.
#pragma once

#include "bench_report.hpp"
#include "postwatch/catalogue.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

namespace postwatch::bench {

struct BenchRun {
  BenchRun(const std::filesystem::path& catalogue_file, const std::string& log_name)
      : catalogue(std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_file))),
        log(std::make_shared<spdlog::logger>(log_name, std::make_shared<spdlog::sinks::stderr_sink_mt>())) {
    log->set_level(spdlog::level::warn);
  }

  test::TempDir work;
  std::shared_ptr<const IndicatorCatalogue> catalogue;
  std::shared_ptr<spdlog::logger> log;
  BenchReport report;

  // Prints the report and writes it to `json_file` when one is given: 0, or 1 when that file
  // cannot be written (said on stderr, after `program`).
  int finish(const std::string& program, const std::string& json_file) const {
    report.print(std::cout);
    if (json_file.empty()) return 0;
    std::ofstream out(json_file);
    out << report.json().dump(2) << "\n";
    if (out) return 0;
    std::cerr << program << ": cannot write " << json_file << "\n";
    return 1;
  }
};

}  // namespace postwatch::bench
