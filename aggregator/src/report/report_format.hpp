// How the progress report writes dates, durations and numbers, and escapes text for HTML and
// CSV. Every function depends on its arguments only (no locale, no clock), so the same store
// gives byte-identical files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postwatch::aggregator::report {

std::string date_text(std::int64_t ms);      // "2021-01-01" (UTC)
std::string minute_text(std::int64_t ms);    // "2021-01-01 06:30" (UTC)
std::string duration_text(std::int64_t ms);  // "3 d 4 h", "5 h 20 min", "12 min", "< 1 min", "0"
// At most `decimals` decimals, trailing zeros dropped: 1.4, 0.15, 2; "–" for none.
std::string number_text(std::optional<double> v, int decimals = 2);
// Six significant digits, for the CSV: 0.1, 1.35, 2; "" for none.
std::string csv_number(std::optional<double> v);
std::string percent_text(std::int64_t part, std::int64_t whole);  // "92.1 %"; "–" when whole is 0

std::string html_escaped(std::string_view text);

}  // namespace postwatch::aggregator::report
