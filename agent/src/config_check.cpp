// AgentConfig::validate (postwatch-agent --check-config): the file, then what it names — the
// catalogue, the secret and TLS files, the key token, the spool, input and fleet directories —
// as the user running it; and ConfigCheck, how the problems found are told.
#include "agent_config_parts.hpp"

#include "postwatch/agent/bundle_overlay.hpp"
#include "postwatch/agent/spool_key.hpp"
#include "postwatch/agent/tls_diagnostics.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/fleet_bundle.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace postwatch::agent {

std::string writable_dir_problem(const std::filesystem::path& dir) {
  std::error_code ec;
  auto p = std::filesystem::absolute(dir, ec);
  if (ec) p = dir;
  if (std::filesystem::exists(p, ec)) {
    if (!std::filesystem::is_directory(p, ec)) return p.string() + " exists and is not a directory";
    if (::access(p.c_str(), W_OK | X_OK) != 0)
      return p.string() + " is not writable by uid " + std::to_string(::geteuid()) + ": " + std::strerror(errno);
    return "";
  }
  // Missing: the agent creates it, so the nearest existing parent must be writable.
  auto parent = p.parent_path();
  while (!parent.empty() && !std::filesystem::exists(parent, ec) && parent != parent.parent_path())
    parent = parent.parent_path();
  if (!std::filesystem::is_directory(parent, ec))
    return p.string() + " cannot be created: " + parent.string() + " is not a directory";
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    return p.string() + " does not exist and cannot be created: " + parent.string() + " is not writable by uid " +
           std::to_string(::geteuid());
  return "";
}

ConfigCheck AgentConfig::validate(const std::filesystem::path& file, const std::filesystem::path& default_catalogue,
                                  const ConfigOverride& over) {
  ConfigCheck check;
  check.file = file;
  std::string text;
  if (!read_config_text(file, text, check.problems)) return check;
  if (!over.overlay.empty()) {
    text = apply_config_overlay(text, over.overlay, check.problems);
    if (text.empty()) return check;
  }
  AgentConfig c = parse_text(file, text, check.problems);
  if (c.config_hash.empty()) return check;  // not a JSON object: nothing else to look at
  auto& problems = check.problems;
  for (auto& p : c.check_consistency()) problems.push_back(std::move(p));

  auto catalogue_file = c.catalogue_file.empty() ? default_catalogue : c.catalogue_file;
  if (!over.catalogue.empty()) {
    try {
      check.catalogue = std::make_shared<const IndicatorCatalogue>(
          IndicatorCatalogue::parse(over.catalogue, over.catalogue_origin.empty() ? "bundle" : over.catalogue_origin));
      if (!c.post_id.empty() && !check.catalogue->find_post(c.post_id))
        problems.push_back(
            {"catalogue", "'" + c.post_id + "' is not a post in the catalogue of " + over.catalogue_origin});
    } catch (const std::exception& e) {
      problems.push_back({"catalogue", over.catalogue_origin + ": " + e.what()});
    }
  } else if (catalogue_file.empty()) {
    problems.push_back({"catalogue_file", "not set and no default catalogue installed"});
  } else {
    try {
      check.catalogue = std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(catalogue_file));
      if (!c.post_id.empty() && !check.catalogue->find_post(c.post_id))
        problems.push_back(
            {"post_id", "'" + c.post_id + "' is not a post in the catalogue " + catalogue_file.string()});
    } catch (const std::exception& e) {
      problems.push_back({"catalogue_file", std::string("catalogue ") + catalogue_file.string() + ": " + e.what()});
    }
  }

  if (!c.password_file.empty()) {
    try {
      read_secret_file(c.password_file);
    } catch (const ConfigError& e) {
      std::string what = e.what();
      problems.push_back({"password_file", what.substr(std::strlen("password_file: "))});
    }
  }
  if (c.tls.enabled)
    for (auto& p : check_tls_files(c.tls)) problems.push_back(std::move(p));
  if (const auto& t = c.identity.pkcs11; t.enabled()) {
    if (std::error_code ec; !std::filesystem::is_regular_file(t.module, ec))
      problems.push_back({"identity.pkcs11.module", "no such file: " + t.module.string() +
                                                        " (the token vendor's PKCS#11 library, e.g. libsofthsm2.so)"});
    if (!t.pin_file.empty()) try {
        read_secret_file(t.pin_file);
      } catch (const ConfigError& e) {
        std::string what = e.what();
        problems.push_back({"identity.pkcs11.pin_file", what.substr(std::strlen("password_file: "))});
      }
  }
  const std::string spool_why = writable_dir_problem(c.spool.dir);
  if (!spool_why.empty()) problems.push_back({"spool.dir", spool_why});
  if (!c.spool.key_file.empty()) {
    if (auto why = spool_key_file_problem(c.spool.key_file); !why.empty()) {
      problems.push_back({"spool.key_file", why});
    } else if (std::error_code ec; spool_why.empty() && !std::filesystem::exists(c.spool.key_file, ec)) {
      // The agent creates the key at its first start: its directory must allow that.
      auto parent = std::filesystem::absolute(c.spool.key_file, ec).parent_path();
      if (auto dir_why = writable_dir_problem(parent); !dir_why.empty())
        problems.push_back({"spool.key_file", "cannot create " + c.spool.key_file.string() + ": " + dir_why});
    }
  }
  check_inputs(c, check.catalogue.get(), problems);
  if (c.fleet.enabled()) {
    try {
      load_fleet_keys(c.fleet.key_file.string());
    } catch (const std::exception& e) {
      problems.push_back({"fleet.key_file", e.what()});
    }
    if (auto why = writable_dir_problem(c.fleet.state_dir); !why.empty()) problems.push_back({"fleet.state_dir", why});
  }

  check.config = std::move(c);
  return check;
}

bool ConfigCheck::ok() const { return errors() == 0; }

std::size_t ConfigCheck::errors() const {
  return static_cast<std::size_t>(
      std::count_if(problems.begin(), problems.end(), [](const ConfigProblem& p) { return !p.warning; }));
}

std::string ConfigCheck::describe(const ConfigProblem& p) const {
  std::string s = file.string() + ": ";
  if (p.warning) s += "warning: ";
  if (!p.field.empty()) s += p.field + ": ";
  return s + p.message;
}

std::string ConfigCheck::describe_all() const {
  std::string out;
  for (bool warnings : {false, true})
    for (const auto& p : problems)
      if (p.warning == warnings) {
        if (!out.empty()) out += '\n';
        out += describe(p);
      }
  return out;
}

}  // namespace postwatch::agent
