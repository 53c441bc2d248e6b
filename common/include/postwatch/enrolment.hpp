// Enrolment (docs/security.md): the operations centre issues a one-time token bound to a post
// and an agent id; the agent proves it holds the token while sending its new public key, and
// learns the aggregator's key from the token, so neither trusts what the broker says.
#pragma once

#include "postwatch/signing.hpp"
#include "postwatch/wire_codec.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch {

using TokenSecret = std::array<std::uint8_t, 32>;

// "pwt1.<id>.<secret>.<aggregator key>": id 16 hex characters, secret and key 64 each.
struct EnrolmentToken {
  std::string id;
  TokenSecret secret{};
  PublicKey aggregator_key{};
};
std::string format_enrolment_token(const EnrolmentToken& token);
// The token, or nullopt with `why` saying what is wrong with the text (never echoing it).
std::optional<EnrolmentToken> parse_enrolment_token(std::string_view text, std::string& why);

// HMAC-SHA256 under the token's secret of "postwatch-enrol-v1", post, agent and key, each
// followed by a zero byte.
std::array<std::uint8_t, 32> enrolment_proof(const TokenSecret& secret, std::string_view post, std::string_view agent,
                                             const PublicKey& key);

// The aggregator's public keys as an enrolled agent keeps them: hex, one per line, '#' starts a
// comment. Several lines: any of them is trusted (a rotation in progress). Throws
// std::runtime_error naming the file (and the line).
std::vector<PublicKey> read_public_keys(const std::filesystem::path& file);
// Replaces `file` atomically (a temporary file, fsynced, renamed over it), `comment` on its
// first line. Also the aggregator's list of its retired keys (docs/security.md).
void write_public_keys(const std::filesystem::path& file, const std::vector<PublicKey>& keys,
                       std::string_view comment =
                           "The aggregator's public key(s) this agent trusts (docs/security.md). "
                           "Written by enrolment and the aggregator's key rotation.");

// A key rotation (docs/security.md, "Rotation"): the agent's key in force signs this statement
// of post, agent and the new key, so only the holder of the old key can name its successor.
Signature endorse_rotation(const SigningKey& current, std::string_view post, std::string_view agent,
                           const PublicKey& next);
bool rotation_endorsed(const PublicKey& current, std::string_view post, std::string_view agent, const PublicKey& next,
                       const Signature& endorsement);

// schemas/postwatch_enrolment.fbs. An enrolment carries token_id and proof; a rotation carries
// endorsed_by and endorsement instead (no token).
struct EnrolRequest {
  std::string agent_id, post_id, token_id;
  PublicKey public_key{};
  std::array<std::uint8_t, 32> proof{};
  std::int64_t at_ms = 0;
  std::string endorsed_by{};
  std::optional<Signature> endorsement{};
  bool rotation() const { return endorsement.has_value(); }
  std::string key_id{};
  std::size_t signature_offset = 0;
};
// schemas/postwatch_enrol_reply.fbs
struct EnrolReply {
  std::string agent_id, post_id, token_id;
  bool accepted = false;
  std::string reason, agent_key_id;
  std::int64_t at_ms = 0;
  std::string key_id{};
  std::size_t signature_offset = 0;
};

// The request `postwatch-agent enrol` sends for `token`: `key`'s public half with the token's
// proof, signed by `key`.
std::vector<std::uint8_t> enrolment_request(const EnrolmentToken& token, std::string_view post, std::string_view agent,
                                            const SigningKey& key, std::int64_t at_ms);

// A request is always signed by the key it enrols, a reply by the aggregator.
std::vector<std::uint8_t> encode_enrol_request(const EnrolRequest& request, const SigningKey& signer);
DecodeError decode_enrol_request(std::span<const std::uint8_t> payload, EnrolRequest& out);
std::vector<std::uint8_t> encode_enrol_reply(const EnrolReply& reply, const SigningKey& signer);
DecodeError decode_enrol_reply(std::span<const std::uint8_t> payload, EnrolReply& out);

}  // namespace postwatch
