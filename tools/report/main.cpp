// postwatch-report: the strategy progress report for a period, from an aggregator's store
// (docs/strategy-progress.md, "The progress report").
//
//   postwatch-report --store FILE --from YYYY-MM-DD --to YYYY-MM-DD [--catalogue FILE] [--out DIR] [--pdf]
//
// Writes DIR/report.html (self-contained: inline CSS and SVG, nothing fetched) and
// DIR/report.csv (the targets' figures), and with --pdf DIR/report.pdf, printed by headless
// Chromium. Reads the store read-only, also while the aggregator runs. Exit status: 0 written,
// 1 writing or printing failed, 2 usage (bad dates, an unreadable store or catalogue).
#include "chromium_pdf.hpp"
#include "postwatch/catalogue.hpp"
#include "progress/target_catalogue.hpp"
#include "report/progress_report.hpp"

#include <boost/program_options.hpp>

#include <fstream>
#include <iostream>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace postwatch;
using namespace postwatch::aggregator;

namespace {

constexpr const char* kUsage =
    "usage: postwatch-report --store FILE --from YYYY-MM-DD --to YYYY-MM-DD [--catalogue FILE] [--out DIR] [--pdf]\n"
    "The period runs from the start (00:00 UTC) of --from to the start of --to; the targets are assessed at its end.\n";

int usage_error(const std::string& what) {
  std::cerr << "postwatch-report: " << what << "\n" << kUsage;
  return 2;
}

// Replaces `file` with `text` through a temporary beside it, so a reader never sees half a report.
void write_file(const fs::path& file, const std::string& text) {
  const auto tmp = fs::path(file.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, file);
}

}  // namespace

int main(int argc, char** argv) {
  std::string store, from, to, catalogue_file, out_dir = ".", chromium;
  po::options_description named("options");
  named.add_options()("help,h", "this help")("store", po::value(&store)->value_name("FILE"),
                                             "the aggregator's store file (postwatch.sqlite) or its --data-dir")(
      "from", po::value(&from)->value_name("YYYY-MM-DD"), "the start of the period (00:00 UTC that day)")(
      "to", po::value(&to)->value_name("YYYY-MM-DD"),
      "the end of the period (00:00 UTC that day), when the targets are assessed")(
      "catalogue", po::value(&catalogue_file)->value_name("FILE"),
      (std::string("indicator catalogue (JSON) with its targets; default: ") + kDefaultCatalogueHelp).c_str())(
      "out", po::value(&out_dir)->value_name("DIR"),
      "where report.html and report.csv go (made if missing); default: the current directory")(
      "pdf", "also report.pdf, printed by headless Chromium")(
      "chromium", po::value(&chromium)->value_name("PATH"),
      "the Chromium to print with; default: chromium or chromium-browser on PATH");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(named).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(e.what());
  }
  if (vm.count("help")) {
    std::cout << kUsage << named << "\n";
    return 0;
  }
  if (store.empty()) return usage_error("which store? (--store FILE)");
  if (from.empty() || to.empty()) return usage_error("the period needs --from and --to");
  const auto from_ms = parse_date_ms(from);
  const auto to_ms = parse_date_ms(to);
  if (!from_ms) return usage_error("--from '" + from + "' is not a date YYYY-MM-DD");
  if (!to_ms) return usage_error("--to '" + to + "' is not a date YYYY-MM-DD");
  if (*from_ms >= *to_ms) return usage_error("--from (" + from + ") must be before --to (" + to + ")");
  fs::path chromium_path;
  if (vm.count("pdf")) {
    chromium_path = report_tool::find_chromium(chromium);
    if (chromium_path.empty()) {
      std::cerr << "postwatch-report: --pdf needs Chromium, and "
                << (chromium.empty() ? std::string("neither chromium nor chromium-browser is on PATH")
                                     : "'" + chromium + "' is not an executable")
                << " (tools/bootstrap installs it, or: apt-get install chromium)\n";
      return 2;
    }
  }

  if (catalogue_file.empty()) catalogue_file = default_catalogue_path().string();
  std::optional<IndicatorCatalogue> catalogue;
  std::optional<TargetCatalogue> targets;
  try {
    catalogue.emplace(IndicatorCatalogue::load(catalogue_file));
    targets.emplace(TargetCatalogue::load(catalogue_file, *catalogue));
  } catch (const std::exception& e) {
    std::cerr << "postwatch-report: catalogue error: " << e.what() << "\n";
    return 2;
  }

  ProgressReport report;
  try {
    report = make_progress_report(*catalogue, *targets, load_report_data(store, *catalogue, *from_ms, *to_ms));
  } catch (const StoreOpenError& e) {
    std::cerr << "postwatch-report: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "postwatch-report: reading the store: " << e.what() << "\n";
    return 1;
  }

  const fs::path dir(out_dir);
  const auto html = dir / "report.html", csv = dir / "report.csv", pdf = dir / "report.pdf";
  try {
    fs::create_directories(dir);
    write_file(html, render_report_html(report));
    write_file(csv, render_report_csv(report));
    std::cout << "wrote " << html.string() << "\nwrote " << csv.string() << "\n";
    if (!chromium_path.empty()) {
      report_tool::print_to_pdf(chromium_path, html, pdf);
      std::cout << "wrote " << pdf.string() << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "postwatch-report: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
