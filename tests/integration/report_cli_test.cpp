// postwatch-report as it is run: on a prepared store it writes the HTML, the CSV and, with --pdf,
// a PDF of several pages whose text (pdftotext, poppler-utils via tools/bootstrap) has the goals
// and the Lagging heading; bad periods and a missing store stop it with exit 2 and a clear message.
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

namespace fs = std::filesystem;
using namespace postwatch::test;

namespace postwatch::test {
// The store of tests/unit/progress_report_test.cpp (the same executable): goal 5 red on
// 2020-06-10, an alarm, and the 2 % pledge lagging at 2021-01-01.
void make_report_store(const fs::path& file);
}  // namespace postwatch::test

namespace {

std::string report_tool() { return (binary_dir() / "tools" / "report" / "postwatch-report").string(); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool have(const char* program) { return run_shell(std::string("command -v ") + program).status == 0; }

class ReportCli : public ::testing::Test {
 protected:
  void SetUp() override { make_report_store(store()); }
  fs::path store() const { return dir_.path() / "postwatch.sqlite"; }
  fs::path out() const { return dir_.path() / "out"; }
  CommandResult report(const std::string& args) const { return run_shell(shell_quoted(report_tool()) + " " + args); }
  std::string period_on_store() const {
    return "--store " + shell_quoted(store().string()) + " --from 2019-01-01 --to 2021-01-01 --catalogue " +
           shell_quoted(catalogue_path().string()) + " --out " + shell_quoted(out().string());
  }

 private:
  TempDir dir_;
};

}  // namespace

TEST_F(ReportCli, WritesHtmlCsvAndAPdfWhoseTextHasTheGoalsAndLagging) {
  ASSERT_TRUE(have("pdftotext") && have("pdfinfo")) << "pdftotext and pdfinfo (poppler-utils) are missing: run "
                                                       "tools/bootstrap (as root), or: apt-get install poppler-utils";
  const auto r = report(period_on_store() + " --pdf");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* name : {"report.html", "report.csv", "report.pdf"}) {
    EXPECT_NE(r.output.find("wrote " + (out() / name).string()), std::string::npos) << r.output;
    EXPECT_GT(fs::file_size(out() / name), 0u) << name;
  }
  EXPECT_EQ(read_file(out() / "report.pdf").substr(0, 5), "%PDF-");

  const auto info = run_shell("pdfinfo " + shell_quoted((out() / "report.pdf").string()));
  ASSERT_EQ(info.status, 0) << info.output;
  std::smatch pages;
  ASSERT_TRUE(std::regex_search(info.output, pages, std::regex(R"(Pages:\s+(\d+))"))) << info.output;
  EXPECT_GE(std::stoi(pages[1].str()), 7) << "a cover and a page per result area";
  EXPECT_NE(info.output.find("(A4)"), std::string::npos) << info.output;

  const auto text = run_shell("pdftotext -layout " + shell_quoted((out() / "report.pdf").string()) + " -");
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find('\f'), std::string::npos) << "no page breaks in the text";
  EXPECT_NE(text.output.find("Lagging"), std::string::npos);
  EXPECT_NE(text.output.find("Counter-terrorism"), std::string::npos);
  EXPECT_NE(text.output.find("Strengthening the international legal order"), std::string::npos);
  EXPECT_NE(text.output.find("NATO Wales pledge"), std::string::npos);
}

TEST_F(ReportCli, TheSameStoreAndArgumentsWriteTheSameFiles) {
  ASSERT_EQ(report(period_on_store()).status, 0);
  const auto html = read_file(out() / "report.html"), csv = read_file(out() / "report.csv");
  ASSERT_FALSE(html.empty());
  ASSERT_EQ(report(period_on_store()).status, 0);
  EXPECT_EQ(read_file(out() / "report.html"), html);
  EXPECT_EQ(read_file(out() / "report.csv"), csv);
}

TEST_F(ReportCli, BadPeriodsAndAMissingStoreStopItWithExit2) {
  const auto cat = " --catalogue " + shell_quoted(catalogue_path().string()) + " --out " + shell_quoted(out().string());
  const auto on_store = "--store " + shell_quoted(store().string()) + cat;

  auto r = report(on_store + " --from 2019-13-01 --to 2021-01-01");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("postwatch-report: --from '2019-13-01' is not a date YYYY-MM-DD"), std::string::npos)
      << r.output;

  r = report(on_store + " --from 2021-01-01 --to 2019-01-01");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--from (2021-01-01) must be before --to (2019-01-01)"), std::string::npos) << r.output;

  r = report(on_store + " --from 2019-01-01");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("the period needs --from and --to"), std::string::npos) << r.output;

  const auto missing = (out().parent_path() / "nowhere.sqlite").string();
  r = report("--store " + shell_quoted(missing) + " --from 2019-01-01 --to 2021-01-01" + cat);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("postwatch-report: " + missing + ": no such store file"), std::string::npos) << r.output;

  r = report(on_store + " --from 2019-01-01 --to 2021-01-01 --pdf --chromium /nonexistent/chromium");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("'/nonexistent/chromium' is not an executable"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out() / "report.html")) << "nothing is written after a refused command";
}

TEST_F(ReportCli, HelpNamesEveryOptionWithoutFloatDefaults) {
  const auto r = report("--help");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* option : {"--store", "--from", "--to", "--catalogue", "--out", "--pdf", "--chromium"})
    EXPECT_NE(r.output.find(option), std::string::npos) << option;
  EXPECT_FALSE(std::regex_search(r.output, std::regex(R"(\d\.\d{4,})"))) << r.output;
}
