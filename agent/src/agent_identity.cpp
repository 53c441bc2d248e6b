#include "postwatch/agent/agent_identity.hpp"

#include "postwatch/agent/identity_key.hpp"
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
    key = load_identity_key(files_, files_.key_file);
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
  // A rotation's old key on the token goes once the new one is in force here.
  if (at_start || changed)
    for (const auto& line : destroy_retired_keys(files_, *signer_)) log_->info("identity: {}", line);
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

AgentIdentity::TrustedKeys AgentIdentity::after(const TrustedKeys& keys, const KeyNotice& notice) {
  TrustedKeys out;
  for (const auto& k : keys) {
    bool retired = k.id != notice.signed_by &&
                   std::find(notice.retired.begin(), notice.retired.end(), k.id) != notice.retired.end();
    if (!retired) out.push_back(k);
  }
  if (notice.next && std::none_of(out.begin(), out.end(), [&](const TrustedKey& t) { return t.key == *notice.next; }))
    out.push_back({*notice.next, key_id_of(*notice.next)});
  return out;
}

void AgentIdentity::note_key_notice(const DeliveryConfirm& c) {
  if (c.next_key.empty() && c.retired_key_ids.empty()) return;
  KeyNotice notice;
  if (c.next_key.size() == std::tuple_size_v<PublicKey>) {
    PublicKey k{};
    std::copy(c.next_key.begin(), c.next_key.end(), k.begin());
    notice.next = k;
  }
  notice.retired = c.retired_key_ids;
  notice.signed_by = c.key_id;
  std::lock_guard lk(trusted_mu_);
  if (trusted_->empty()) return;
  auto next = after(*trusted_, notice);
  const bool same = next.size() == trusted_->size() &&
                    std::equal(next.begin(), next.end(), trusted_->begin(),
                               [](const TrustedKey& a, const TrustedKey& b) { return a.key == b.key; });
  if (!same) notice_ = std::move(notice);
}

bool AgentIdentity::apply_key_notice() {
  std::optional<KeyNotice> notice;
  std::shared_ptr<const TrustedKeys> keys;
  {
    std::lock_guard lk(trusted_mu_);
    notice.swap(notice_);
    keys = trusted_;
  }
  if (!notice || keys->empty()) return false;
  auto next = std::make_shared<TrustedKeys>(after(*keys, *notice));
  if (next->size() == keys->size() &&
      std::equal(next->begin(), next->end(), keys->begin(),
                 [](const TrustedKey& a, const TrustedKey& b) { return a.key == b.key; }))
    return false;
  std::vector<PublicKey> file_keys;
  std::string added, dropped, ids;
  for (const auto& k : *next) {
    file_keys.push_back(k.key);
    ids += (ids.empty() ? "" : ", ") + k.id;
    if (std::none_of(keys->begin(), keys->end(), [&](const TrustedKey& t) { return t.key == k.key; }))
      added += (added.empty() ? "" : ", ") + k.id;
  }
  for (const auto& k : *keys)
    if (std::none_of(next->begin(), next->end(), [&](const TrustedKey& t) { return t.key == k.key; }))
      dropped += (dropped.empty() ? "" : ", ") + k.id;
  try {
    write_public_keys(files_.aggregator_key_file, file_keys);
  } catch (const std::runtime_error& e) {
    // Nothing changes: the notice comes again with the next confirmation.
    log_->error("identity: the aggregator's key rotation (signed by {}) could not be kept: {}", notice->signed_by,
                e.what());
    return false;
  }
  aggregator_stamp_ = stamp_of(files_.aggregator_key_file);  // our own write: not a change to read back
  {
    std::lock_guard lk(trusted_mu_);
    trusted_ = std::move(next);
  }
  log_->info(
      "identity: the aggregator's key rotation, signed by its key {}: {}{}{}; confirmations must now be signed "
      "by {} ({})",
      notice->signed_by, added.empty() ? "" : "trusting its next key " + added,
      !added.empty() && !dropped.empty() ? ", " : "", dropped.empty() ? "" : "no longer trusting " + dropped, ids,
      files_.aggregator_key_file.string());
  return true;
}

std::vector<std::string> AgentIdentity::trusted_key_ids() const {
  auto keys = trusted();
  std::vector<std::string> ids;
  for (const auto& k : *keys) {
    if (ids.size() == WireLimits::max_trusted_keys) break;
    ids.push_back(k.id);
  }
  return ids;
}

}  // namespace postwatch::agent
