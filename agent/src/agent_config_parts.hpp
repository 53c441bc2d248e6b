// What the files of AgentConfig share: agent_config.cpp (load, parse), agent_config_sections.cpp
// (parse_text, a function per section), agent_config_inputs.cpp (the input sections) and
// config_check.cpp (validate).
#pragma once

#include "config_field_reader.hpp"

#include "postwatch/agent/agent_config.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace postwatch {
class IndicatorCatalogue;
}

namespace postwatch::agent {

// The file's text into `out`; false, with a problem recorded, if it cannot be opened.
bool read_config_text(const std::filesystem::path& file, std::string& out, std::vector<ConfigProblem>& problems);

// The optional input sections: local_api, drop_dir, probes, scripts.
void parse_inputs(const std::filesystem::path& file, const nlohmann::json& root, FieldReader& r, AgentConfig& c);
// Problems of the input sections that need the catalogue (may be null) or the file system.
void check_inputs(const AgentConfig& c, const IndicatorCatalogue* catalogue, std::vector<ConfigProblem>& problems);

// Empty if this user can create or write the directory `dir`, otherwise why not.
std::string writable_dir_problem(const std::filesystem::path& dir);

}  // namespace postwatch::agent
