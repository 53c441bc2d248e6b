#include "store/stored_batch.hpp"

#include "postwatch/name_table.hpp"
#include "store/event_store.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace postwatch::aggregator {

// The refusal names (event_sink.hpp): kept in the store's rows, so they live with it.
namespace {
constexpr NameTable<EventRefusal, 4> kRefusalNames{{{EventRefusal::None, ""},
                                                    {EventRefusal::Future, "future"},
                                                    {EventRefusal::UnknownIndicator, "unknown_indicator"},
                                                    {EventRefusal::BadValue, "bad_value"}}};
}  // namespace

std::string_view to_string(EventRefusal r) { return kRefusalNames.name(r); }
std::optional<EventRefusal> parse_event_refusal(std::string_view s) { return kRefusalNames.parse(s); }

namespace {

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) { return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1); }

void put_varint(std::string& out, std::uint64_t v) {
  char buf[10];
  std::size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(static_cast<std::uint8_t>(v) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

// Wrapping differences: a hostile or broken time may sit anywhere in int64.
std::int64_t delta(std::int64_t a, std::int64_t b) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) - static_cast<std::uint64_t>(b));
}
std::int64_t add(std::int64_t a, std::int64_t d) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(d));
}

// Doubles that are whole numbers within ±2^53 (levels, counts, booleans) go as varints.
bool small_integer(double v, std::int64_t& out) {
  if (!(v >= -9007199254740992.0 && v <= 9007199254740992.0)) return false;
  if (v != std::trunc(v) || (v == 0 && std::signbit(v))) return false;
  out = static_cast<std::int64_t>(v);
  return true;
}

struct Reader {
  std::string_view d;
  bool ok = true;
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (d.empty()) break;
      auto b = static_cast<std::uint8_t>(d.front());
      d.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  std::uint8_t byte() {
    if (d.empty()) {
      ok = false;
      return 0;
    }
    auto b = static_cast<std::uint8_t>(d.front());
    d.remove_prefix(1);
    return b;
  }
  std::string_view bytes(std::uint64_t n) {
    if (n > d.size()) {
      ok = false;
      return {};
    }
    auto s = d.substr(0, static_cast<std::size_t>(n));
    d.remove_prefix(static_cast<std::size_t>(n));
    return s;
  }
};

}  // namespace

StoredBatchSummary encode_stored_batch(std::span<const PersistedEvent> events,
                                       const std::vector<std::uint32_t>& code_of, std::string& body) {
  StoredBatchSummary s;
  if (events.empty()) return s;
  s.first_seq = events.front().seq;
  s.received_at_ms = events.front().received_at_ms;
  s.min_observed_ms = s.max_observed_ms = events.front().observed_at_ms;
  s.count = static_cast<std::uint32_t>(events.size());
  body.push_back(static_cast<char>(kStoredBatchFormat));
  std::uint64_t prev_seq = s.first_seq;
  std::int64_t prev_observed = s.received_at_ms;
  for (const auto& e : events) {
    s.last_seq = std::max(s.last_seq, e.seq);
    s.min_observed_ms = std::min(s.min_observed_ms, e.observed_at_ms);
    s.max_observed_ms = std::max(s.max_observed_ms, e.observed_at_ms);
    put_varint(body, zigzag(static_cast<std::int64_t>(e.seq - prev_seq)));
    prev_seq = e.seq;
    if (e.refused == EventRefusal::UnknownIndicator) {
      put_varint(body, 0);
      put_varint(body, e.unknown_indicator.size());
      body.append(e.unknown_indicator);
    } else {
      put_varint(body, code_of[e.indicator]);
    }
    put_varint(body, zigzag(delta(e.observed_at_ms, prev_observed)));
    prev_observed = e.observed_at_ms;
    put_varint(body, zigzag(delta(e.received_at_ms, s.received_at_ms)));
    put_varint(body, zigzag(e.clock_correction_ms));
    std::int64_t integer = 0;
    const bool is_integer = small_integer(e.number, integer);
    const bool has_text = !e.text.empty();
    body.push_back(static_cast<char>((static_cast<unsigned>(e.kind) & 0x7) | (e.late ? 0x08 : 0) |
                                     ((static_cast<unsigned>(e.refused) & 0x3) << 4) | (has_text ? 0x40 : 0) |
                                     (is_integer ? 0x80 : 0)));
    if (is_integer) {
      put_varint(body, zigzag(integer));
    } else {
      auto bits = std::bit_cast<std::uint64_t>(e.number);
      char le[8];
      for (int i = 0; i < 8; ++i) le[i] = static_cast<char>(bits >> (8 * i));
      body.append(le, 8);
    }
    if (has_text) {
      put_varint(body, e.text.size());
      body.append(e.text);
    }
  }
  return s;
}

bool decode_stored_batch(std::string_view body, const StoredBatchSummary& s, const std::vector<std::string>& name_of,
                         StoredEventRow& row, const std::function<void(const StoredEventRow&)>& fn) {
  Reader r{body};
  if (r.byte() != kStoredBatchFormat) return false;
  std::uint64_t seq = s.first_seq;
  std::int64_t observed = s.received_at_ms;
  for (std::uint32_t i = 0; i < s.count; ++i) {
    seq += static_cast<std::uint64_t>(unzigzag(r.varint()));
    auto code = r.varint();
    if (code == 0) {
      row.indicator = r.bytes(r.varint());
    } else if (code < name_of.size() && !name_of[code].empty()) {
      row.indicator = name_of[code];
    } else {
      return false;
    }
    observed = add(observed, unzigzag(r.varint()));
    row.received_at_ms = add(s.received_at_ms, unzigzag(r.varint()));
    row.clock_correction_ms = unzigzag(r.varint());
    auto flags = r.byte();
    if (!r.ok || (flags & 0x7) > static_cast<unsigned>(ValueKind::Text)) return false;
    row.seq = seq;
    row.observed_at_ms = observed;
    row.kind = static_cast<ValueKind>(flags & 0x7);
    row.late = (flags & 0x08) != 0;
    row.refused = static_cast<EventRefusal>((flags >> 4) & 0x3);
    if (flags & 0x80) {
      row.number = static_cast<double>(unzigzag(r.varint()));
    } else {
      auto le = r.bytes(8);
      std::uint64_t bits = 0;
      for (std::size_t k = 0; k < le.size(); ++k)
        bits |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(le[k])) << (8 * k);
      row.number = std::bit_cast<double>(bits);
    }
    if (flags & 0x40)
      row.text = r.bytes(r.varint());
    else
      row.text.clear();
    if (!r.ok) return false;
    fn(row);
  }
  return r.d.empty();
}

}  // namespace postwatch::aggregator
