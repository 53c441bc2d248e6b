// The agent's signing identity as the running agent holds it (docs/security.md): its key, and
// the aggregator keys whose confirmations it obeys. Read at start, and read again whenever
// either file changes on disk (`postwatch-agent enrol` writing them, `rotate-key` moving a new
// key over the old), so neither needs a restart.
//
// The aggregator's own key rotation (docs/security.md, "The aggregator's key") reaches it in
// confirmations: a verified one may name the aggregator's next key, to trust from then on, and
// keys it retired, to trust no more; the agent writes the result to aggregator_key_file.
//
// Threads: the publisher thread owns the signing key and the files (load, reload, signer,
// applying a rotation notice); Paho's thread checks confirmations against a snapshot of the
// aggregator keys, swapped whole, and leaves a verified notice for the publisher thread.
#pragma once

#include "postwatch/agent/agent_config.hpp"
#include "postwatch/signing.hpp"
#include "postwatch/wire_codec.hpp"

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace postwatch::agent {

class AgentIdentity {
 public:
  AgentIdentity(IdentityConfig files, std::shared_ptr<spdlog::logger> log);

  // At start: a damaged or exposed file throws ConfigError. Logs what the agent does.
  void load();
  // Publisher thread, every few seconds: when a file changed, reads both again. A damaged file
  // then keeps the identity in use (logged). True when the signing key changed.
  bool reload_if_changed();

  // Null when not enrolled: messages go out unsigned.
  const SigningKey* signer() const { return signer_ ? &*signer_ : nullptr; }
  bool enrolled() const { return signer_.has_value(); }

  // Any thread. Empty when `c` (whose bytes are `payload`) may be obeyed: not enrolled, or
  // signed by one of the aggregator's keys; otherwise why not.
  std::string confirm_problem(const DeliveryConfirm& c, std::span<const std::uint8_t> payload) const;
  // Paho's thread, for a confirmation confirm_problem() passed: keeps its next key and retired
  // keys for apply_key_notice() when they would change the keys trusted. Ignored when not
  // enrolled (an unsigned confirmation vouches for nothing).
  void note_key_notice(const DeliveryConfirm& c);
  // Publisher thread: applies the last noted notice: writes aggregator_key_file and trusts the
  // new set at once. Never drops the key that signed the notice. True when the set changed.
  bool apply_key_notice();
  // Any thread: the ids of the aggregator keys trusted now, for births and heartbeats (at most
  // WireLimits::max_trusted_keys).
  std::vector<std::string> trusted_key_ids() const;

 private:
  struct FileStamp {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    std::int64_t mtime_ns = 0;
    off_t size = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static FileStamp stamp_of(const std::filesystem::path& file);
  struct TrustedKey {
    PublicKey key{};
    std::string id;  // key_id_of(key), worked out once
  };
  using TrustedKeys = std::vector<TrustedKey>;
  struct KeyNotice {
    std::optional<PublicKey> next;
    std::vector<std::string> retired;
    std::string signed_by;
  };
  // The keys `notice` leaves trusted, from `keys`.
  static TrustedKeys after(const TrustedKeys& keys, const KeyNotice& notice);
  bool read(bool at_start);
  std::shared_ptr<const TrustedKeys> trusted() const;

  IdentityConfig files_;
  std::shared_ptr<spdlog::logger> log_;
  FileStamp key_stamp_, aggregator_stamp_;
  std::optional<SigningKey> signer_;
  mutable std::mutex trusted_mu_;  // only swaps and copies the pointer, and the notice
  std::shared_ptr<const TrustedKeys> trusted_;
  std::optional<KeyNotice> notice_;  // noted on Paho's thread, applied on the publisher's
};

}  // namespace postwatch::agent
