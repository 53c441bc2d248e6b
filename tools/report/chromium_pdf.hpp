// Prints an HTML file to PDF with headless Chromium, the browser the project already installs
// (tools/bootstrap) for its dashboard tests. No network: the report names no external resource,
// and Chromium's own background traffic is switched off.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

namespace postwatch::report_tool {

// `chromium`, or the first of chromium and chromium-browser on PATH; empty when there is none.
std::filesystem::path find_chromium(const std::string& chromium = "");

// Writes `pdf` from `html`. Throws std::runtime_error saying what went wrong (with the end of
// Chromium's output) when it does not exit 0 within `timeout` or leaves no PDF.
void print_to_pdf(const std::filesystem::path& chromium, const std::filesystem::path& html,
                  const std::filesystem::path& pdf, std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace postwatch::report_tool
