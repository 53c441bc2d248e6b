// Replaces a file so that after a crash or a power cut it is the old one or the new one, whole:
// a temporary file beside it, fsynced, renamed over it, then the directory fsynced. What the
// rollouts library keeps (rollouts.json, commands.json, adopted catalogues) is written so.
#pragma once

#include <filesystem>
#include <string_view>

namespace postwatch::aggregator {

// Throws std::runtime_error naming the file and the reason.
void replace_file_durably(const std::filesystem::path& file, std::string_view text);

}  // namespace postwatch::aggregator
