#include "postwatch/agent/agent_identity.hpp"

#include "postwatch/enrolment.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <stdexcept>

namespace postwatch::agent {

AgentIdentity::AgentIdentity(IdentityConfig files, std::shared_ptr<spdlog::logger> log)
    : files_(std::move(files)), log_(std::move(log)), trusted_(std::make_shared<const TrustedKeys>()) {}

AgentIdentity::FileStamp AgentIdentity::stamp_of(const std::filesystem::path& file) {
  FileStamp s;
  struct stat st {};
  if (!file.empty() && ::stat(file.c_str(), &st) == 0) {
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    s.size = st.st_size;
  }
  return s;
}

std::shared_ptr<const AgentIdentity::TrustedKeys> AgentIdentity::trusted() const {
  std::lock_guard lk(trusted_mu_);
  return trusted_;
}

void AgentIdentity::load() { read(true); }

bool AgentIdentity::reload_if_changed() {
  if (stamp_of(files_.key_file) == key_stamp_ && stamp_of(files_.aggregator_key_file) == aggregator_stamp_)
    return false;
  return read(false);
}

bool AgentIdentity::read(bool at_start) {
  key_stamp_ = stamp_of(files_.key_file);
  aggregator_stamp_ = stamp_of(files_.aggregator_key_file);
  const std::string before = signer_ ? signer_->key_id() : std::string();
  if (!key_stamp_.exists || !aggregator_stamp_.exists) {
    if (signer_) {  // files removed under a running agent: what it holds stays valid
      log_->warn("identity: {} or {} is gone; this agent keeps signing with key {} until it restarts",
                 files_.key_file.string(), files_.aggregator_key_file.string(), before);
    } else if (key_stamp_.exists) {
      log_->warn(
          "identity: {} exists but {} does not: enrolment did not finish, so this agent publishes unsigned (run "
          "postwatch-agent enrol again with a token; docs/security.md)",
          files_.key_file.string(), files_.aggregator_key_file.string());
    } else if (at_start) {
      log_->info(
          "not enrolled: messages are unsigned and confirmations unchecked (postwatch-agent enrol, "
          "docs/security.md)");
    }
    return false;
  }
  std::optional<SigningKey> key;
  auto keys = std::make_shared<TrustedKeys>();
  try {
    key = SigningKey::load(files_.key_file);
    for (const auto& k : read_public_keys(files_.aggregator_key_file)) keys->push_back({k, key_id_of(k)});
  } catch (const std::runtime_error& e) {
    if (at_start) throw ConfigError(std::string("identity: ") + e.what());
    log_->error("identity: {}; this agent keeps {}", e.what(),
                signer_ ? "signing with key " + before : std::string("publishing unsigned"));
    return false;
  }
  std::string ids;
  for (const auto& k : *keys) ids += (ids.empty() ? "" : ", ") + k.id;
  const bool changed = key->key_id() != before;
  signer_ = std::move(key);
  {
    std::lock_guard lk(trusted_mu_);
    trusted_ = std::move(keys);
  }
  if (at_start)
    log_->info("enrolled: signing with key {}; delivery confirmations must be signed by the aggregator's key {}",
               signer_->key_id(), ids);
  else if (changed)
    log_->info("identity: now signing with key {}{}; confirmations must be signed by the aggregator's key {}",
               signer_->key_id(), before.empty() ? " (enrolled while running)" : " (was " + before + ")", ids);
  else
    log_->info("identity: the aggregator's keys are now {}", ids);
  return changed;
}

std::string AgentIdentity::confirm_problem(const DeliveryConfirm& c, std::span<const std::uint8_t> payload) const {
  auto keys = trusted();
  if (keys->empty()) return "";
  if (c.signature_offset == 0) return "it is unsigned, and this agent is enrolled";
  auto k = std::find_if(keys->begin(), keys->end(), [&](const TrustedKey& t) { return t.id == c.key_id; });
  if (k == keys->end()) return "it is signed by key " + c.key_id + ", which is not the aggregator's";
  return verify_payload(payload, c.signature_offset, k->key) ? "" : "its signature does not verify (altered or forged)";
}

}  // namespace postwatch::agent
