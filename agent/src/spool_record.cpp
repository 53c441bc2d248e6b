#include "postwatch/agent/spool_record.hpp"

#include <algorithm>
#include <cstring>

namespace postwatch::agent {

namespace {

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& out, std::string_view s, std::size_t max) {
  auto n = static_cast<std::uint16_t>(std::min(s.size(), max));
  put(out, n);
  out.append(s.data(), n);
}

struct Cursor {
  std::string_view d;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (d.size() < sizeof v) {
      ok = false;
      return v;
    }
    std::memcpy(&v, d.data(), sizeof v);
    d.remove_prefix(sizeof v);
    return v;
  }
  // Refuses lengths the encoder never writes: they can only be corruption.
  std::string str(std::size_t max) {
    auto n = get<std::uint16_t>();
    if (!ok || d.size() < n || n > max) {
      ok = false;
      return {};
    }
    std::string s(d.substr(0, n));
    d.remove_prefix(n);
    return s;
  }
};

}  // namespace

void encode_body(const IndicatorEvent& e, std::string& out) {
  put(out, e.seq);
  put(out, e.observed_at_ms);
  put(out, static_cast<std::uint8_t>(e.kind));
  put(out, e.number);
  put_str(out, e.indicator, 255);
  put_str(out, e.text, 1024);
  put_str(out, e.note, 2048);
  auto ntags = static_cast<std::uint8_t>(std::min<std::size_t>(e.tags.size(), 32));
  put(out, ntags);
  for (std::size_t i = 0; i < ntags; ++i) {
    put_str(out, e.tags[i].first, 255);
    put_str(out, e.tags[i].second, 255);
  }
  // 0 ("not said") is written as nothing, as before the version was kept: such a record reads
  // back the same bytes whichever agent wrote it.
  if (e.catalogue_version != 0) put(out, e.catalogue_version);
}

void frame_record(std::string_view body, std::string& out) {
  auto body_len = static_cast<std::uint32_t>(body.size());
  std::uint32_t crc = crc32c(body.data(), body.size());
  put(out, body_len);
  put(out, crc);
  out.append(body);
}

void encode_record(const IndicatorEvent& e, std::string& out) {
  std::size_t start = out.size();
  out.append(kRecordHeaderBytes, '\0');
  encode_body(e, out);
  auto body_len = static_cast<std::uint32_t>(out.size() - start - kRecordHeaderBytes);
  std::uint32_t crc = crc32c(out.data() + start + kRecordHeaderBytes, body_len);
  std::memcpy(out.data() + start, &body_len, 4);
  std::memcpy(out.data() + start + 4, &crc, 4);
}

RecordStatus decode_record(std::string_view data, IndicatorEvent& e, std::size_t& consumed) {
  if (data.size() < kRecordHeaderBytes) return RecordStatus::NeedMore;
  std::uint32_t len = 0, crc = 0;
  std::memcpy(&len, data.data(), 4);
  std::memcpy(&crc, data.data() + 4, 4);
  if (len == 0 || len > kMaxRecordBodyBytes) return RecordStatus::Corrupt;
  if (data.size() < kRecordHeaderBytes + len) return RecordStatus::NeedMore;
  std::string_view body = data.substr(kRecordHeaderBytes, len);
  if (crc32c(body.data(), body.size()) != crc) return RecordStatus::Corrupt;
  auto st = decode_body(body, e);
  if (st == RecordStatus::Ok) consumed = kRecordHeaderBytes + len;
  return st;
}

RecordStatus decode_body(std::string_view body, IndicatorEvent& e) {
  Cursor c{body};
  e.seq = c.get<std::uint64_t>();
  e.observed_at_ms = c.get<std::int64_t>();
  auto kind = c.get<std::uint8_t>();
  e.number = c.get<double>();
  e.indicator = c.str(255);
  e.text = c.str(1024);
  e.note = c.str(2048);
  auto ntags = c.get<std::uint8_t>();
  if (ntags > 32) return RecordStatus::Corrupt;
  e.tags.clear();
  for (std::uint8_t i = 0; i < ntags && c.ok; ++i) {
    auto k = c.str(255);
    auto v = c.str(255);
    e.tags.emplace_back(std::move(k), std::move(v));
  }
  // Records written before the catalogue version was kept end here: version 0, "not said". A
  // written version is never 0 (the encoder leaves 0 out): one that is can only be corruption.
  const bool versioned = c.d.size() == sizeof(std::uint32_t);
  e.catalogue_version = versioned ? c.get<std::uint32_t>() : 0;
  if (versioned && e.catalogue_version == 0) return RecordStatus::Corrupt;
  if (!c.ok || !c.d.empty() || kind > static_cast<std::uint8_t>(ValueKind::Text)) return RecordStatus::Corrupt;
  e.kind = static_cast<ValueKind>(kind);
  return RecordStatus::Ok;
}

}  // namespace postwatch::agent
