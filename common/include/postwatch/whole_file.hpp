// A file read whole into a string: configs, catalogues, secrets, the agent's spool segments
// and dropped event files. Each caller words its own error around `error`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace postwatch {

// The bytes of `file`, or nothing if it cannot be opened or read; then `error` (when given)
// says why, as strerror does ("No such file or directory").
std::optional<std::string> read_whole_file(const std::filesystem::path& file, std::string* error = nullptr);

}  // namespace postwatch
