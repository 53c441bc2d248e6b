#include "postwatch/agent/spool_segment.hpp"

#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace postwatch::agent {

namespace {

constexpr std::size_t kAeadAt = 8, kKeyIdAt = 12, kSegmentIdAt = 20, kCrcAt = 36;

std::string_view key_id_of(const std::string& header) {
  return std::string_view(header).substr(kKeyIdAt, SpoolKey::kIdBytes);
}

}  // namespace

std::shared_ptr<SegmentFormat> SegmentFormat::create(std::shared_ptr<const SpoolKey> key, SpoolAead aead) {
  auto f = std::make_shared<SegmentFormat>();
  if (!key) {
    f->header_ = kSegmentMagic;
    return f;
  }
  f->sealed_ = true;
  f->aead_ = aead;
  std::string& h = f->header_;
  h.assign(kSealedHeaderBytes, '\0');
  std::memcpy(h.data(), kSealedSegmentMagic.data(), kSealedSegmentMagic.size());
  h[kAeadAt] = static_cast<char>(aead);
  std::memcpy(h.data() + kKeyIdAt, key->id().data(), SpoolKey::kIdBytes);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(h.data() + kSegmentIdAt), static_cast<int>(kSegmentIdBytes)) != 1)
    throw std::runtime_error("spool cipher: the random generator failed");
  std::uint32_t crc = crc32c(h.data(), kCrcAt);
  std::memcpy(h.data() + kCrcAt, &crc, 4);
  f->cipher_ = std::make_unique<SpoolCipher>(*key, aead, std::string_view(h).substr(kSegmentIdAt, kSegmentIdBytes),
                                             std::string_view(h).substr(0, kCrcAt));
  return f;
}

HeaderStatus SegmentFormat::parse(std::string_view data, std::shared_ptr<SegmentFormat>& out) {
  if (data.size() >= kSegmentMagic.size() && data.substr(0, kSegmentMagic.size()) == kSegmentMagic) {
    out = std::make_shared<SegmentFormat>();
    out->header_ = kSegmentMagic;
    return HeaderStatus::Ok;
  }
  if (data.size() < kSealedHeaderBytes || data.substr(0, kSealedSegmentMagic.size()) != kSealedSegmentMagic)
    return HeaderStatus::NoHeader;
  std::uint32_t crc = 0;
  std::memcpy(&crc, data.data() + kCrcAt, 4);
  const auto aead = static_cast<std::uint8_t>(data[kAeadAt]);
  if (crc32c(data.data(), kCrcAt) != crc || !is_known_aead(aead)) return HeaderStatus::Damaged;
  out = std::make_shared<SegmentFormat>();
  out->sealed_ = true;
  out->aead_ = static_cast<SpoolAead>(aead);
  out->header_ = data.substr(0, kSealedHeaderBytes);
  return HeaderStatus::Ok;
}

std::string SegmentFormat::key_id_hex() const {
  if (!sealed_) return "";
  auto id = key_id_of(header_);
  return to_hex(reinterpret_cast<const unsigned char*>(id.data()), id.size());
}

bool SegmentFormat::use_key(const SpoolKey& key) {
  if (!sealed_) return true;
  if (std::memcmp(key_id_of(header_).data(), key.id().data(), SpoolKey::kIdBytes) != 0) return false;
  if (!cipher_)
    cipher_ = std::make_unique<SpoolCipher>(key, aead_, std::string_view(header_).substr(kSegmentIdAt, kSegmentIdBytes),
                                            std::string_view(header_).substr(0, kCrcAt));
  return true;
}

std::size_t SegmentFormat::record_bytes(std::size_t body_bytes) const {
  return kRecordHeaderBytes + body_bytes + (sealed_ ? SpoolCipher::kOverhead : 0);
}

void SegmentFormat::encode(std::string_view body, std::uint64_t offset, std::string& out) {
  if (!sealed_) return frame_record(body, out);
  if (!cipher_) throw std::logic_error("spool segment sealed under another key cannot be written");
  const std::size_t start = out.size();
  out.append(kRecordHeaderBytes, '\0');
  cipher_->seal(body, offset, out);
  auto len = static_cast<std::uint32_t>(out.size() - start - kRecordHeaderBytes);
  std::uint32_t crc = crc32c(out.data() + start + kRecordHeaderBytes, len);
  std::memcpy(out.data() + start, &len, 4);
  std::memcpy(out.data() + start + 4, &crc, 4);
}

RecordStatus SegmentFormat::decode(std::string_view data, std::uint64_t offset, IndicatorEvent& e,
                                   std::size_t& consumed) {
  if (!sealed_) return decode_record(data, e, consumed);
  if (!cipher_) return RecordStatus::Unauthentic;
  if (data.size() < kRecordHeaderBytes) return RecordStatus::NeedMore;
  std::uint32_t len = 0, crc = 0;
  std::memcpy(&len, data.data(), 4);
  std::memcpy(&crc, data.data() + 4, 4);
  if (len <= SpoolCipher::kOverhead || len > kMaxRecordBodyBytes + SpoolCipher::kOverhead) return RecordStatus::Corrupt;
  if (data.size() < kRecordHeaderBytes + len) return RecordStatus::NeedMore;
  std::string_view sealed = data.substr(kRecordHeaderBytes, len);
  if (crc32c(sealed.data(), sealed.size()) != crc) return RecordStatus::Corrupt;
  if (!cipher_->open(sealed, offset, plain_)) return RecordStatus::Unauthentic;
  auto st = decode_body(plain_, e);
  if (st == RecordStatus::Ok) consumed = kRecordHeaderBytes + len;
  return st;
}

}  // namespace postwatch::agent
