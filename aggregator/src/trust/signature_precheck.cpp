#include "trust/signature_precheck.hpp"

#include "postwatch/wire_codec.hpp"

namespace postwatch::aggregator {

std::string SignaturePrecheck::key_of(std::string_view post, std::string_view agent, std::string_view key_id) {
  std::string k;
  k.reserve(post.size() + agent.size() + key_id.size() + 2);
  k.append(post).push_back('/');
  k.append(agent).push_back('/');
  k.append(key_id);
  return k;
}

void SignaturePrecheck::refresh(const AgentKeyRegistry& keys, std::int64_t now_ms, std::int64_t min_gap_ms) {
  if (keys.version() == version_ || now_ms - refreshed_at_ms_ < min_gap_ms) return;
  auto next = std::make_shared<Snapshot>();
  for (const auto* k : keys.all())
    if (!k->revoked() && k->verifier) next->emplace(key_of(k->post, k->agent, k->key_id), k->verifier);
  {
    std::lock_guard lk(mu_);
    snapshot_ = std::move(next);
  }
  version_ = keys.version();
  refreshed_at_ms_ = now_ms;
}

std::shared_ptr<const VerifyKey> SignaturePrecheck::verify(std::span<const std::uint8_t> payload) const {
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard lk(mu_);
    snap = snapshot_;
  }
  if (snap->empty()) return nullptr;
  thread_local BatchView b;  // reused: decoding a batch's events allocates otherwise
  if (decode_batch(payload, b) != DecodeError::None || b.signature_offset == 0) return nullptr;
  auto it = snap->find(key_of(b.post_id, b.agent_id, b.key_id));
  if (it == snap->end()) return nullptr;
  return it->second->verify_payload(payload, b.signature_offset) ? it->second : nullptr;
}

}  // namespace postwatch::aggregator
