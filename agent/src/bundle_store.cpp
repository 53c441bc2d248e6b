#include "postwatch/agent/bundle_store.hpp"

#include "postwatch/whole_file.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace postwatch::agent {
namespace {

using json = nlohmann::json;

std::runtime_error io_error(const std::filesystem::path& file, const char* what) {
  return std::runtime_error(file.string() + ": " + what + ": " + std::strerror(errno));
}

// Writes `text` to `file` through a temporary, synced before and after the rename.
void write_durably(const std::filesystem::path& file, std::string_view text) {
  const auto tmp = file.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw io_error(tmp, "cannot create");
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto e = io_error(tmp, "cannot write");
      ::close(fd);
      throw e;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = io_error(tmp, "cannot sync");
    ::close(fd);
    throw e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), file.c_str()) != 0) throw io_error(file, "cannot rename into place");
  int dir = ::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

json to_json(const BundleVersions& v) { return {{"config", v.config}, {"catalogue", v.catalogue}}; }
BundleVersions versions_from(const json& j) {
  return {j.at("config").get<std::uint64_t>(), j.at("catalogue").get<std::uint64_t>()};
}

BundleOutcome::Kind kind_from(const std::string& s) {
  for (auto k : {BundleOutcome::Kind::Applied, BundleOutcome::Kind::Refused, BundleOutcome::Kind::RolledBack})
    if (s == to_string(k)) return k;
  return BundleOutcome::Kind::None;
}

std::string bundle_file_name(std::uint64_t version) { return "bundle-" + std::to_string(version) + ".json"; }

}  // namespace

std::string_view to_string(BundleOutcome::Kind kind) {
  switch (kind) {
    case BundleOutcome::Kind::Applied: return "applied";
    case BundleOutcome::Kind::Refused: return "refused";
    case BundleOutcome::Kind::RolledBack: return "rolled_back";
    case BundleOutcome::Kind::None: break;
  }
  return "none";
}

std::int64_t BundleStore::this_pid() { return static_cast<std::int64_t>(::getpid()); }

std::string BundleStore::this_boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

BundleStore::BundleStore(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw std::runtime_error(dir_.string() + ": cannot create the fleet state directory: " + ec.message());
  ::chmod(dir_.c_str(), 0700);
  const auto file = dir_ / "state.json";
  auto text = read_whole_file(file);
  if (!text) return;  // the first start: the board's own files, nothing tried
  try {
    json j = json::parse(*text);
    state_.current = versions_from(j.at("current"));
    state_.previous = versions_from(j.at("previous"));
    if (const auto& t = j.at("trial"); !t.is_null())
      state_.trial = BundleTrial{t.at("version").get<std::uint64_t>(), t.at("deadline_ms").get<std::int64_t>(),
                                 t.at("pid").get<std::int64_t>(), t.at("boot_id").get<std::string>()};
    state_.newest_tried = j.at("newest_tried").get<std::uint64_t>();
    const auto& last = j.at("last");
    state_.last = {kind_from(last.at("kind").get<std::string>()), last.at("version").get<std::uint64_t>(),
                   last.at("reason").get<std::string>(), last.at("at_ms").get<std::int64_t>()};
  } catch (const json::exception& e) {
    throw std::runtime_error(file.string() + ": not a fleet state this agent wrote (" + e.what() +
                             "); move it away to start from the board's own files");
  }
}

std::string BundleStore::bundle_text(std::uint64_t version) const {
  return read_whole_file(dir_ / bundle_file_name(version)).value_or(std::string{});
}

void BundleStore::save(const BundleState& next) {
  json trial = nullptr;
  if (next.trial)
    trial = {{"version", next.trial->version},
             {"deadline_ms", next.trial->deadline_ms},
             {"pid", next.trial->pid},
             {"boot_id", next.trial->boot_id}};
  json j = {{"current", to_json(next.current)},
            {"previous", to_json(next.previous)},
            {"trial", trial},
            {"newest_tried", next.newest_tried},
            {"last",
             {{"kind", to_string(next.last.kind)},
              {"version", next.last.version},
              {"reason", next.last.reason},
              {"at_ms", next.last.at_ms}}}};
  write_durably(dir_ / "state.json", j.dump(2) + "\n");
  state_ = next;
}

void BundleStore::keep(std::uint64_t version, std::string_view signed_text) {
  write_durably(dir_ / bundle_file_name(version), signed_text);
  if (after_step) after_step("keep");
}

void BundleStore::begin_trial(std::uint64_t version, const BundleVersions& next_versions, std::int64_t deadline_ms,
                              std::int64_t now_ms) {
  BundleState next = state_;
  next.previous = state_.current;
  next.current = next_versions;
  next.trial = BundleTrial{version, deadline_ms, this_pid(), this_boot_id()};
  next.newest_tried = std::max(next.newest_tried, version);
  next.last = {BundleOutcome::Kind::None, version, "on trial", now_ms};
  save(next);
  if (after_step) after_step("begin_trial");
}

void BundleStore::commit_trial(std::int64_t now_ms) {
  if (!state_.trial) return;
  BundleState next = state_;
  next.last = {BundleOutcome::Kind::Applied, state_.trial->version, "", now_ms};
  next.trial.reset();
  save(next);
  if (after_step) after_step("commit_trial");
  prune();
}

void BundleStore::roll_back(const std::string& reason, std::int64_t now_ms) {
  if (!state_.trial) return;
  BundleState next = state_;
  next.last = {BundleOutcome::Kind::RolledBack, state_.trial->version, reason, now_ms};
  next.current = state_.previous;
  next.trial.reset();
  save(next);
  if (after_step) after_step("roll_back");
  prune();
}

void BundleStore::refuse(std::uint64_t version, const std::string& reason, std::int64_t now_ms) {
  BundleState next = state_;
  next.newest_tried = std::max(next.newest_tried, version);
  next.last = {BundleOutcome::Kind::Refused, version, reason, now_ms};
  save(next);
  prune();
}

bool BundleStore::recover(std::int64_t now_ms) {
  if (!state_.trial) return false;
  if (state_.trial->pid == this_pid() && state_.trial->boot_id == this_boot_id()) return false;
  roll_back("the agent stopped before the bundle showed health (crash, power cut or restart during the trial)", now_ms);
  return true;
}

// Keeps the bundles what is in force and what ran before were made of; the rest go.
void BundleStore::prune() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("bundle-", 0) != 0) continue;
    std::uint64_t v = 0;
    try {
      v = std::stoull(name.substr(std::strlen("bundle-")));
    } catch (const std::exception&) {
      continue;
    }
    const auto& c = state_.current;
    const auto& p = state_.previous;
    if (v == c.config || v == c.catalogue || v == p.config || v == p.catalogue) continue;
    std::filesystem::remove(entry.path(), ec);
  }
}

}  // namespace postwatch::agent
