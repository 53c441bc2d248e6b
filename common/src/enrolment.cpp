#include "postwatch/enrolment.hpp"

#include "signed_fields.hpp"

#include "postwatch/wire/postwatch_enrol_reply_generated.h"
#include "postwatch/wire/postwatch_enrolment_generated.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace postwatch {
namespace fbw = postwatch::wire::v1;

namespace {
constexpr std::string_view kTokenPrefix = "pwt1.";
constexpr std::size_t kMaxPayload = 4096;

std::string_view view(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view{};
}

bool id_ok(std::string_view s) { return !s.empty() && s.size() <= WireLimits::max_id_bytes; }

// Enrolment messages are always signed: a pair that is absent is refused as malformed too.
template <typename Table>
bool signature_at(const Table* t, std::span<const std::uint8_t> payload, std::string& key_id, std::size_t& offset) {
  std::string_view id;
  if (!signed_fields::locate(t, payload, id, offset) || offset == 0) return false;
  key_id = std::string(id);
  return true;
}

// Both messages are small and rare: decode from an aligned copy, whatever the payload.
template <typename Decode>
DecodeError decode_copy(std::span<const std::uint8_t> payload, Decode&& decode) {
  if (payload.size() > kMaxPayload) return DecodeError::Oversized;
  std::vector<std::uint64_t> copy((payload.size() + 7) / 8);
  if (!payload.empty()) std::memcpy(copy.data(), payload.data(), payload.size());
  return decode(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(copy.data()), payload.size()));
}

}  // namespace

std::string format_enrolment_token(const EnrolmentToken& t) {
  return std::string(kTokenPrefix) + t.id + "." + to_hex(t.secret) + "." + to_hex(t.aggregator_key);
}

std::optional<EnrolmentToken> parse_enrolment_token(std::string_view text, std::string& why) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (!text.starts_with(kTokenPrefix)) {
    why = "an enrolment token starts with 'pwt1.' (as POST /api/v1/enrolment-tokens prints it)";
    return std::nullopt;
  }
  text.remove_prefix(kTokenPrefix.size());
  auto dot1 = text.find('.'), dot2 = text.rfind('.');
  EnrolmentToken t;
  std::array<std::uint8_t, 8> id{};
  if (dot1 == std::string_view::npos || dot1 == dot2 || !from_hex(text.substr(0, dot1), id) ||
      !from_hex(text.substr(dot1 + 1, dot2 - dot1 - 1), t.secret) ||
      !from_hex(text.substr(dot2 + 1), t.aggregator_key)) {
    why = "the enrolment token is damaged (cut or mistyped): copy it again as issued";
    return std::nullopt;
  }
  t.id = std::string(text.substr(0, dot1));
  return t;
}

std::vector<PublicKey> read_public_keys(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string() + ": " + std::strerror(errno));
  std::vector<PublicKey> keys;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.erase(0, 1);
    if (line.empty()) continue;
    auto key = public_key_from_hex(line);
    if (!key)
      throw std::runtime_error(file.string() + ":" + std::to_string(n) +
                               ": not an Ed25519 public key (64 hex characters)");
    keys.push_back(*key);
  }
  if (keys.empty()) throw std::runtime_error(file.string() + " holds no key");
  return keys;
}

void write_public_keys(const std::filesystem::path& file, const std::vector<PublicKey>& keys,
                       std::string_view comment) {
  auto tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "# " << comment << "\n";
    for (const auto& k : keys) out << to_hex(k) << "  # key id " << key_id_of(k) << "\n";
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  if (int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) throw std::runtime_error("cannot replace " + file.string() + ": " + ec.message());
  // The rename itself survives a power cut only once the directory is on disk.
  auto dir = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  if (int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::array<std::uint8_t, 32> enrolment_proof(const TokenSecret& secret, std::string_view post, std::string_view agent,
                                             const PublicKey& key) {
  std::vector<std::uint8_t> msg;
  auto add = [&](std::span<const std::uint8_t> part) {
    msg.insert(msg.end(), part.begin(), part.end());
    msg.push_back(0);
  };
  auto text = [](std::string_view s) {
    return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  add(text("postwatch-enrol-v1"));
  add(text(post));
  add(text(agent));
  add(key);
  return hmac_sha256(secret, msg);
}

namespace {
std::vector<std::uint8_t> rotation_statement(std::string_view post, std::string_view agent, const PublicKey& next) {
  std::vector<std::uint8_t> msg;
  auto add = [&](std::string_view s) {
    msg.insert(msg.end(), s.begin(), s.end());
    msg.push_back(0);
  };
  add("postwatch-rotate-v1");
  add(post);
  add(agent);
  msg.insert(msg.end(), next.begin(), next.end());
  msg.push_back(0);
  return msg;
}
}  // namespace

Signature endorse_rotation(const SigningKey& current, std::string_view post, std::string_view agent,
                           const PublicKey& next) {
  return current.sign(rotation_statement(post, agent, next));
}

bool rotation_endorsed(const PublicKey& current, std::string_view post, std::string_view agent, const PublicKey& next,
                       const Signature& endorsement) {
  return verify_signature(current, rotation_statement(post, agent, next), endorsement);
}

std::vector<std::uint8_t> enrolment_request(const EnrolmentToken& token, std::string_view post, std::string_view agent,
                                            const SigningKey& key, std::int64_t at_ms) {
  EnrolRequest r;
  r.agent_id = std::string(agent);
  r.post_id = std::string(post);
  r.token_id = token.id;
  r.public_key = key.public_key();
  r.proof = enrolment_proof(token.secret, post, agent, key.public_key());
  r.at_ms = at_ms;
  return encode_enrol_request(r, key);
}

std::vector<std::uint8_t> encode_enrol_request(const EnrolRequest& r, const SigningKey& signer) {
  flatbuffers::FlatBufferBuilder fbb(512);
  auto agent = fbb.CreateString(r.agent_id);
  auto post = fbb.CreateString(r.post_id);
  auto key = fbb.CreateVector(r.public_key.data(), r.public_key.size());
  flatbuffers::Offset<flatbuffers::String> token, endorsed_by;
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> proof, endorsement;
  if (r.rotation()) {
    endorsed_by = fbb.CreateString(r.endorsed_by);
    endorsement = fbb.CreateVector(r.endorsement->data(), r.endorsement->size());
  } else {
    token = fbb.CreateString(r.token_id);
    proof = fbb.CreateVector(r.proof.data(), r.proof.size());
  }
  auto sig = signed_fields::add(fbb, &signer);
  auto root = fbw::CreateEnrolRequest(fbb, 1, agent, post, token, key, proof, r.at_ms, sig.key_id, sig.signature,
                                      endorsed_by, endorsement);
  fbw::FinishEnrolRequestBuffer(fbb, root);
  return signed_fields::finish(fbb, fbw::GetEnrolRequest(fbb.GetBufferPointer()), &signer);
}

DecodeError decode_enrol_request(std::span<const std::uint8_t> payload, EnrolRequest& out) {
  return decode_copy(payload, [&](std::span<const std::uint8_t> p) {
    if (p.size() < 8 || !fbw::EnrolRequestBufferHasIdentifier(p.data())) return DecodeError::WrongIdentifier;
    flatbuffers::Verifier verifier(p.data(), p.size());
    if (!fbw::VerifyEnrolRequestBuffer(verifier)) return DecodeError::Malformed;
    const auto* r = fbw::GetEnrolRequest(p.data());
    if (r->schema_version() != 1) return DecodeError::UnsupportedVersion;
    out.agent_id = std::string(view(r->agent_id()));
    out.post_id = std::string(view(r->post_id()));
    out.token_id = std::string(view(r->token_id()));
    out.at_ms = r->at_ms();
    const auto* key = r->public_key();
    const auto* proof = r->proof();
    const auto* endorsement = r->endorsement();
    out.endorsed_by = std::string(view(r->endorsed_by()));
    out.endorsement.reset();
    out.proof = {};
    if (!id_ok(out.agent_id) || !id_ok(out.post_id) || !key || key->size() != 32 ||
        !signature_at(r, p, out.key_id, out.signature_offset))
      return DecodeError::FieldTooLong;
    if (endorsement) {  // a rotation: endorsed by the key in force, no token
      if (endorsement->size() != kSignatureBytes || !id_ok(out.endorsed_by) || !out.token_id.empty() || proof)
        return DecodeError::FieldTooLong;
      out.endorsement.emplace();
      std::memcpy(out.endorsement->data(), endorsement->data(), kSignatureBytes);
    } else {
      if (!id_ok(out.token_id) || !proof || proof->size() != 32 || !out.endorsed_by.empty())
        return DecodeError::FieldTooLong;
      std::memcpy(out.proof.data(), proof->data(), 32);
    }
    std::memcpy(out.public_key.data(), key->data(), 32);
    return DecodeError::None;
  });
}

std::vector<std::uint8_t> encode_enrol_reply(const EnrolReply& r, const SigningKey& signer) {
  flatbuffers::FlatBufferBuilder fbb(512);
  auto agent = fbb.CreateString(r.agent_id);
  auto post = fbb.CreateString(r.post_id);
  auto token = fbb.CreateString(r.token_id);
  auto reason = fbb.CreateString(r.reason);
  auto agent_key = fbb.CreateString(r.agent_key_id);
  auto sig = signed_fields::add(fbb, &signer);
  auto root = fbw::CreateEnrolReply(fbb, 1, agent, post, token, r.accepted, reason, agent_key, r.at_ms, sig.key_id,
                                    sig.signature);
  fbw::FinishEnrolReplyBuffer(fbb, root);
  return signed_fields::finish(fbb, fbw::GetEnrolReply(fbb.GetBufferPointer()), &signer);
}

DecodeError decode_enrol_reply(std::span<const std::uint8_t> payload, EnrolReply& out) {
  return decode_copy(payload, [&](std::span<const std::uint8_t> p) {
    if (p.size() < 8 || !fbw::EnrolReplyBufferHasIdentifier(p.data())) return DecodeError::WrongIdentifier;
    flatbuffers::Verifier verifier(p.data(), p.size());
    if (!fbw::VerifyEnrolReplyBuffer(verifier)) return DecodeError::Malformed;
    const auto* r = fbw::GetEnrolReply(p.data());
    if (r->schema_version() != 1) return DecodeError::UnsupportedVersion;
    out.agent_id = std::string(view(r->agent_id()));
    out.post_id = std::string(view(r->post_id()));
    out.token_id = std::string(view(r->token_id()));
    out.accepted = r->accepted();
    out.reason = std::string(view(r->reason()));
    out.agent_key_id = std::string(view(r->agent_key_id()));
    out.at_ms = r->at_ms();
    if (!id_ok(out.agent_id) || !id_ok(out.post_id) || out.reason.size() > 512 ||
        !signature_at(r, p, out.key_id, out.signature_offset))
      return DecodeError::FieldTooLong;
    return DecodeError::None;
  });
}

}  // namespace postwatch
