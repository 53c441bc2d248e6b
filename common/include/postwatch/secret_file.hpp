// Secrets (broker passwords) live in files only their owner can read. Shared by the agent
// and the aggregator so both refuse an exposed secret with the same words.
#pragma once

#include <filesystem>
#include <string>

namespace postwatch {

// Whether group or others may read `file` (an error message naming the mode and the chmod
// that fixes it), empty if not.
std::string secret_file_exposure(const std::filesystem::path& file);

// Reads a secret from `file`: refuses an unreadable, exposed or empty file, strips one
// trailing newline (and a carriage return before it). Throws std::runtime_error whose
// message names the file and never holds the secret.
std::string read_secret_file(const std::filesystem::path& file);

}  // namespace postwatch
