// One CSV field as RFC 4180 writes it: quoted, with quotes doubled, when it holds a comma, a
// quote or a line break. Shared by every CSV the project writes (the API, postwatch-store,
// the progress report).
#pragma once

#include <string>
#include <string_view>

namespace postwatch {

inline std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace postwatch
