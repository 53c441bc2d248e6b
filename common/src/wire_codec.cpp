#include "postwatch/wire_codec.hpp"

#include "signed_fields.hpp"

#include "postwatch/wire/postwatch_agent_state_generated.h"
#include "postwatch/wire/postwatch_delivery_generated.h"
#include "postwatch/wire/postwatch_events_generated.h"

#include <cmath>
#include <cstring>

namespace postwatch {
namespace fbw = postwatch::wire::v1;

namespace {

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> key_id_list(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<std::string>& ids) {
  if (ids.empty()) return {};
  return fbb.CreateVectorOfStrings(ids);
}

// A bounded list of key ids: false when it has more than `max` or an empty or overlong id.
bool read_key_id_list(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* ids, std::size_t max,
                      std::vector<std::string>& out) {
  out.clear();
  if (!ids) return true;
  if (ids->size() > max) return false;
  for (const auto* id : *ids) {
    if (id->size() == 0 || id->size() > WireLimits::max_id_bytes) return false;
    out.emplace_back(id->data(), id->size());
  }
  return true;
}

}  // namespace

std::string_view to_string(ValueKind kind) {
  switch (kind) {
    case ValueKind::Level: return "level";
    case ValueKind::Count: return "count";
    case ValueKind::Gauge: return "gauge";
    case ValueKind::Boolean: return "boolean";
    case ValueKind::Share: return "share";
    case ValueKind::Text: return "text";
  }
  return "unknown";
}

std::string_view to_string(ClockSync sync) {
  switch (sync) {
    case ClockSync::Unknown: return "unknown";
    case ClockSync::Synchronised: return "synchronised";
    case ClockSync::Unsynchronised: return "unsynchronised";
  }
  return "unknown";
}

bool parse_value_kind(std::string_view name, ValueKind& out) {
  for (auto k :
       {ValueKind::Level, ValueKind::Count, ValueKind::Gauge, ValueKind::Boolean, ValueKind::Share, ValueKind::Text}) {
    if (to_string(k) == name) {
      out = k;
      return true;
    }
  }
  return false;
}

std::string_view to_string(DecodeError error) {
  switch (error) {
    case DecodeError::None: return "ok";
    case DecodeError::Oversized: return "oversized";
    case DecodeError::WrongIdentifier: return "wrong_identifier";
    case DecodeError::Malformed: return "malformed";
    case DecodeError::UnsupportedVersion: return "unsupported_version";
    case DecodeError::TooManyEvents: return "too_many_events";
    case DecodeError::FieldTooLong: return "field_too_long";
    case DecodeError::BadValue: return "bad_value";
    case DecodeError::UnknownCodec: return "unknown_codec";
    case DecodeError::UnknownDictionary: return "unknown_dictionary";
    case DecodeError::CorruptFrame: return "corrupt_frame";
  }
  return "unknown";
}

std::vector<std::uint8_t> encode_batch(const EventBatch& batch, const SigningKey* signer) {
  flatbuffers::FlatBufferBuilder fbb(256 + batch.events.size() * 96);
  std::vector<flatbuffers::Offset<fbw::Event>> events;
  events.reserve(batch.events.size());
  std::vector<flatbuffers::Offset<fbw::Tag>> tags;
  for (const auto& e : batch.events) {
    auto indicator = fbb.CreateSharedString(e.indicator);  // a batch repeats few indicator ids
    flatbuffers::Offset<flatbuffers::String> text, note;
    if (!e.text.empty()) text = fbb.CreateString(e.text);
    if (!e.note.empty()) note = fbb.CreateString(e.note);
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fbw::Tag>>> tag_vec;
    if (!e.tags.empty()) {
      tags.clear();
      for (const auto& [k, v] : e.tags) tags.push_back(fbw::CreateTag(fbb, fbb.CreateString(k), fbb.CreateString(v)));
      tag_vec = fbb.CreateVector(tags);
    }
    events.push_back(fbw::CreateEvent(fbb, e.seq, e.observed_at_ms, indicator, static_cast<fbw::ValueKind>(e.kind),
                                      e.number, text, note, tag_vec));
  }
  auto agent = fbb.CreateString(batch.agent_id);
  auto post = fbb.CreateString(batch.post_id);
  auto ev = fbb.CreateVector(events);
  auto sig = signed_fields::add(fbb, signer);
  auto root = fbw::CreateEventBatch(
      fbb, WireLimits::schema_version, agent, post, batch.sent_at_ms, ev, batch.clock_epoch, sig.key_id, sig.signature,
      batch.urgent ? fbw::BatchLane::Urgent : fbw::BatchLane::Main, batch.catalogue_version);
  fbw::FinishEventBatchBuffer(fbb, root);
  return signed_fields::finish(fbb, fbw::GetEventBatch(fbb.GetBufferPointer()), signer);
}

namespace {

std::string_view view(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view{};
}

// The owning decoders take any payload: one that does not start 8-byte aligned is decoded from
// an aligned copy (they copy its contents anyway). FlatBuffers reads scalars in place, and an
// ARM core faults on a misaligned 64-bit read (armhf under qemu: SIGBUS; TargetArch.* tests it).
template <typename Decode>
DecodeError decode_aligned(std::span<const std::uint8_t> payload, Decode&& decode) {
  if (reinterpret_cast<std::uintptr_t>(payload.data()) % alignof(std::uint64_t) == 0) return decode(payload);
  std::vector<std::uint64_t> copy((payload.size() + 7) / 8);
  std::memcpy(copy.data(), payload.data(), payload.size());
  return decode(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(copy.data()), payload.size()));
}

DecodeError decode_agent_state_aligned(std::span<const std::uint8_t> payload, AgentState& out);
DecodeError decode_delivery_confirm_aligned(std::span<const std::uint8_t> payload, DeliveryConfirm& out);

}  // namespace

DecodeError decode_batch(std::span<const std::uint8_t> payload, BatchView& out) {
  out.events.clear();
  if (payload.size() > WireLimits::max_payload_bytes) return DecodeError::Oversized;
  if (payload.size() < 8 || !fbw::EventBatchBufferHasIdentifier(payload.data())) return DecodeError::WrongIdentifier;
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 16;
  opts.max_tables = 4 * WireLimits::max_events_per_batch + 16;  // event + a few tags each
  flatbuffers::Verifier verifier(payload.data(), payload.size(), opts);
  if (!fbw::VerifyEventBatchBuffer(verifier)) return DecodeError::Malformed;
  const auto* batch = fbw::GetEventBatch(payload.data());
  if (batch->schema_version() != WireLimits::schema_version) return DecodeError::UnsupportedVersion;
  out.agent_id = view(batch->agent_id());
  out.post_id = view(batch->post_id());
  out.sent_at_ms = batch->sent_at_ms();
  out.clock_epoch = batch->clock_epoch();
  out.urgent = batch->lane() == fbw::BatchLane::Urgent;  // a lane from a later version reads as Main
  out.catalogue_version = batch->catalogue_version();
  if (out.agent_id.size() > WireLimits::max_id_bytes || out.post_id.size() > WireLimits::max_id_bytes ||
      !signed_fields::locate(batch, payload, out.key_id, out.signature_offset))
    return DecodeError::FieldTooLong;
  const auto* events = batch->events();
  if (!events) return DecodeError::None;
  if (events->size() > WireLimits::max_events_per_batch) return DecodeError::TooManyEvents;
  out.events.reserve(events->size());
  for (const auto* e : *events) {
    EventView v;
    v.seq = e->seq();
    v.observed_at_ms = e->observed_at_ms();
    v.indicator = view(e->indicator());
    auto kind = static_cast<std::uint8_t>(e->kind());
    if (kind > static_cast<std::uint8_t>(ValueKind::Text)) return DecodeError::BadValue;
    v.kind = static_cast<ValueKind>(kind);
    v.number = e->number();
    if (!std::isfinite(v.number)) return DecodeError::BadValue;
    v.text = view(e->text());
    v.note = view(e->note());
    if (v.indicator.size() > WireLimits::max_id_bytes || v.text.size() > WireLimits::max_text_bytes ||
        v.note.size() > WireLimits::max_note_bytes)
      return DecodeError::FieldTooLong;
    out.events.push_back(v);
  }
  return DecodeError::None;
}

namespace {

DecodeError decode_owned_batch(std::span<const std::uint8_t> payload, EventBatch& out) {
  BatchView v;
  auto err = decode_batch(payload, v);
  if (err != DecodeError::None) return err;
  out.agent_id = std::string(v.agent_id);
  out.post_id = std::string(v.post_id);
  out.sent_at_ms = v.sent_at_ms;
  out.clock_epoch = v.clock_epoch;
  out.urgent = v.urgent;
  out.catalogue_version = v.catalogue_version;
  out.key_id = std::string(v.key_id);
  out.signature_offset = v.signature_offset;
  out.events.clear();
  const auto* batch = fbw::GetEventBatch(payload.data());
  for (std::size_t i = 0; i < v.events.size(); ++i) {
    const auto& ev = v.events[i];
    IndicatorEvent e{ev.seq,    ev.observed_at_ms,    std::string(ev.indicator), ev.kind,
                     ev.number, std::string(ev.text), std::string(ev.note),      {}};
    e.catalogue_version = v.catalogue_version;
    if (const auto* tags = batch->events()->Get(static_cast<flatbuffers::uoffset_t>(i))->tags()) {
      for (const auto* t : *tags) e.tags.emplace_back(std::string(view(t->key())), std::string(view(t->value())));
    }
    out.events.push_back(std::move(e));
  }
  return DecodeError::None;
}

}  // namespace

DecodeError decode_batch(std::span<const std::uint8_t> payload, EventBatch& out) {
  return decode_aligned(payload, [&](std::span<const std::uint8_t> p) { return decode_owned_batch(p, out); });
}

std::vector<std::uint8_t> encode_agent_state(const AgentState& st, const SigningKey* signer) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto agent = fbb.CreateString(st.agent_id);
  auto post = fbb.CreateString(st.post_id);
  auto version = fbb.CreateString(st.agent_version);
  auto hash = fbb.CreateString(st.config_hash);
  flatbuffers::Offset<fbw::AgentMetrics> metrics;
  if (st.has_metrics) {
    const auto& m = st.metrics;
    metrics = fbw::CreateAgentMetrics(fbb, m.spool_events, m.spool_bytes, m.oldest_unsent_age_ms, m.events_accepted,
                                      m.events_sent, m.events_dropped, m.reconnects, m.rss_bytes, m.uptime_s,
                                      m.sent_through_seq, m.confirmed_through_seq, m.held_from_seq, m.uplink_bytes,
                                      m.uplink_bytes_per_s, m.uplink_cap_bytes_per_s);
  }
  auto trusted = key_id_list(fbb, st.aggregator_key_ids);
  flatbuffers::Offset<fbw::FleetReport> fleet;
  if (st.has_fleet) {
    const auto& f = st.fleet;
    auto reason = fbb.CreateString(f.last_reason.substr(0, WireLimits::max_note_bytes));
    fleet = fbw::CreateFleetReport(fbb, f.config_bundle, f.catalogue_bundle, f.catalogue_version,
                                   static_cast<fbw::BundleOutcome>(f.last_outcome), f.last_version, reason, f.applied,
                                   f.rolled_back, f.refused);
  }
  auto sig = signed_fields::add(fbb, signer);
  auto root = fbw::CreateAgentState(
      fbb, WireLimits::schema_version, agent, post, st.online ? fbw::AgentStatus::Online : fbw::AgentStatus::Offline,
      st.at_ms, version, hash, st.first_unacked_seq, st.heartbeat_interval_s, metrics, st.awaits_confirmation,
      static_cast<fbw::ClockSync>(st.clock_sync), st.clock_jumps, st.last_clock_jump_ms, st.last_clock_jump_at_ms,
      st.one_shot, sig.key_id, sig.signature, trusted, fleet);
  fbw::FinishAgentStateBuffer(fbb, root);
  return signed_fields::finish(fbb, fbw::GetAgentState(fbb.GetBufferPointer()), signer);
}

DecodeError decode_agent_state(std::span<const std::uint8_t> payload, AgentState& out) {
  return decode_aligned(payload, [&](std::span<const std::uint8_t> p) { return decode_agent_state_aligned(p, out); });
}

namespace {

DecodeError decode_agent_state_aligned(std::span<const std::uint8_t> payload, AgentState& out) {
  if (payload.size() > std::size_t{64} * 1024) return DecodeError::Oversized;
  if (payload.size() < 8 || !fbw::AgentStateBufferHasIdentifier(payload.data())) return DecodeError::WrongIdentifier;
  flatbuffers::Verifier verifier(payload.data(), payload.size());
  if (!fbw::VerifyAgentStateBuffer(verifier)) return DecodeError::Malformed;
  const auto* st = fbw::GetAgentState(payload.data());
  if (st->schema_version() != WireLimits::schema_version) return DecodeError::UnsupportedVersion;
  out.agent_id = std::string(view(st->agent_id()));
  out.post_id = std::string(view(st->post_id()));
  std::string_view key_id;
  if (out.agent_id.size() > WireLimits::max_id_bytes || out.post_id.size() > WireLimits::max_id_bytes ||
      !signed_fields::locate(st, payload, key_id, out.signature_offset))
    return DecodeError::FieldTooLong;
  out.key_id = std::string(key_id);
  if (!read_key_id_list(st->aggregator_key_ids(), WireLimits::max_trusted_keys, out.aggregator_key_ids))
    return DecodeError::FieldTooLong;
  out.online = st->status() == fbw::AgentStatus::Online;
  out.at_ms = st->at_ms();
  out.agent_version = std::string(view(st->agent_version()));
  out.config_hash = std::string(view(st->config_hash()));
  out.first_unacked_seq = st->first_unacked_seq();
  out.heartbeat_interval_s = st->heartbeat_interval_s();
  out.awaits_confirmation = st->awaits_confirmation();
  auto sync = static_cast<std::uint8_t>(st->clock_sync());
  out.clock_sync = sync <= static_cast<std::uint8_t>(ClockSync::Unsynchronised)
                       ? static_cast<ClockSync>(sync)
                       : ClockSync::Unknown;  // a newer agent's value
  out.clock_jumps = st->clock_jumps();
  out.one_shot = st->one_shot();
  out.last_clock_jump_ms = st->last_clock_jump_ms();
  out.last_clock_jump_at_ms = st->last_clock_jump_at_ms();
  out.has_metrics = st->metrics() != nullptr;
  if (const auto* m = st->metrics()) {
    out.metrics = AgentMetrics{m->spool_events(),
                               m->spool_bytes(),
                               m->oldest_unsent_age_ms(),
                               m->events_accepted(),
                               m->events_sent(),
                               m->events_dropped(),
                               m->reconnects(),
                               m->rss_bytes(),
                               m->uptime_s(),
                               m->sent_through_seq(),
                               m->confirmed_through_seq(),
                               m->held_from_seq(),
                               m->uplink_bytes(),
                               m->uplink_bytes_per_s(),
                               m->uplink_cap_bytes_per_s()};
  }
  out.has_fleet = st->fleet() != nullptr;
  if (const auto* f = st->fleet()) {
    if (f->last_reason() && f->last_reason()->size() > WireLimits::max_note_bytes) return DecodeError::FieldTooLong;
    auto outcome = static_cast<std::uint8_t>(f->last_outcome());
    out.fleet = FleetReport{f->config_bundle(),
                            f->catalogue_bundle(),
                            f->catalogue_version(),
                            outcome <= static_cast<std::uint8_t>(FleetReport::Outcome::OnTrial)
                                ? static_cast<FleetReport::Outcome>(outcome)
                                : FleetReport::Outcome::None,  // a newer agent's value
                            f->last_version(),
                            std::string(view(f->last_reason())),
                            f->applied(),
                            f->rolled_back(),
                            f->refused()};
  }
  return DecodeError::None;
}

}  // namespace

std::vector<std::uint8_t> encode_delivery_confirm(const DeliveryConfirm& c, const SigningKey* signer) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto agent = fbb.CreateString(c.agent_id);
  auto post = fbb.CreateString(c.post_id);
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> next_key;
  if (!c.next_key.empty()) next_key = fbb.CreateVector(c.next_key);
  auto retired = key_id_list(fbb, c.retired_key_ids);
  auto sig = signed_fields::add(fbb, signer);
  auto root =
      fbw::CreateDeliveryConfirm(fbb, WireLimits::schema_version, agent, post, c.through_seq, c.at_ms, c.resend_from,
                                 sig.key_id, sig.signature, next_key, retired, c.batch_dictionary);
  fbw::FinishDeliveryConfirmBuffer(fbb, root);
  return signed_fields::finish(fbb, fbw::GetDeliveryConfirm(fbb.GetBufferPointer()), signer);
}

DecodeError decode_delivery_confirm(std::span<const std::uint8_t> payload, DeliveryConfirm& out) {
  return decode_aligned(payload,
                        [&](std::span<const std::uint8_t> p) { return decode_delivery_confirm_aligned(p, out); });
}

namespace {

DecodeError decode_delivery_confirm_aligned(std::span<const std::uint8_t> payload, DeliveryConfirm& out) {
  if (payload.size() > std::size_t{4} * 1024) return DecodeError::Oversized;
  if (payload.size() < 8 || !fbw::DeliveryConfirmBufferHasIdentifier(payload.data()))
    return DecodeError::WrongIdentifier;
  flatbuffers::Verifier verifier(payload.data(), payload.size());
  if (!fbw::VerifyDeliveryConfirmBuffer(verifier)) return DecodeError::Malformed;
  const auto* c = fbw::GetDeliveryConfirm(payload.data());
  if (c->schema_version() != WireLimits::schema_version) return DecodeError::UnsupportedVersion;
  out.agent_id = std::string(view(c->agent_id()));
  out.post_id = std::string(view(c->post_id()));
  std::string_view key_id;
  if (out.agent_id.size() > WireLimits::max_id_bytes || out.post_id.size() > WireLimits::max_id_bytes ||
      !signed_fields::locate(c, payload, key_id, out.signature_offset))
    return DecodeError::FieldTooLong;
  out.key_id = std::string(key_id);
  out.next_key.clear();
  if (const auto* next = c->next_key()) {
    if (next->size() != std::tuple_size_v<PublicKey>) return DecodeError::BadValue;
    out.next_key.assign(next->begin(), next->end());
  }
  if (!read_key_id_list(c->retired_key_ids(), WireLimits::max_retired_keys, out.retired_key_ids))
    return DecodeError::FieldTooLong;
  out.through_seq = c->through_seq();
  out.at_ms = c->at_ms();
  out.resend_from = c->resend_from();
  out.batch_dictionary = c->batch_dictionary();
  return DecodeError::None;
}

}  // namespace

}  // namespace postwatch
