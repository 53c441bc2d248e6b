#include "postwatch/whole_file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace postwatch {

std::optional<std::string> read_whole_file(const std::filesystem::path& file, std::string* error) {
  auto fail = [&] {
    if (error) *error = std::strerror(errno != 0 ? errno : EIO);
    return std::nullopt;
  };
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail();
  std::string text;
  char chunk[16 * 1024];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) text.append(chunk, static_cast<std::size_t>(in.gcount()));
  if (in.bad()) return fail();
  return text;
}

}  // namespace postwatch
