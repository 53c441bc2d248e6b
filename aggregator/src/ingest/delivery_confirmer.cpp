#include "ingest/delivery_confirmer.hpp"

#include "ingest/batch_ingest.hpp"
#include "postwatch/wire_codec.hpp"

#include <algorithm>

namespace postwatch::aggregator {

DeliveryConfirmer::DeliveryConfirmer(const IndicatorCatalogue& catalogue, AgentTable& agents, BatchIngest& ingest,
                                     Publish publish, Owns owns)
    : catalogue_(catalogue), agents_(agents), ingest_(ingest), publish_(std::move(publish)), owns_(std::move(owns)) {}

bool DeliveryConfirmer::send(const AgentRecord& r, std::uint64_t through, std::uint64_t resend_from,
                             std::int64_t now_ms) {
  DeliveryConfirm c{r.name, catalogue_.posts()[r.post].id, through, now_ms, resend_from};
  c.next_key = next_key_;
  c.retired_key_ids = retired_ids_;
  c.batch_dictionary = ingest_.dictionary()->id();
  auto payload = encode_delivery_confirm(c, signer_);
  // The confirmation is retained (a reconnecting agent hears the latest at once); a resend
  // request is not (it would be replayed to the agent on every reconnect).
  if (!publish_(r.confirm.topic, payload, resend_from == 0)) {
    counters_.publish_failures += 1;
    return false;
  }
  return true;
}

namespace {
// Whether the agent's last heartbeat says it released seqs beyond `through` (then it cannot
// resend them, and step 3 settles the window instead).
bool released_beyond(const AgentRecord& r, std::uint64_t through) {
  return r.presence.has_metrics && r.presence.metrics.confirmed_through_seq > through;
}
}  // namespace

void DeliveryConfirmer::anchor(AgentRecord& r) {
  // The birth of an agent that keeps events until confirmed says where its spool started at
  // connect (it holds nothing below), and a heartbeat what was confirmed to it: either tells
  // which unseen seqs below the first one we saw are still to come. Without them, nothing is
  // confirmed (SeqWindow, top of file). An agent that releases on PUBACK holds nothing to
  // resend: its window stays unanchored, and seqs below the first one seen are not gaps.
  const auto& p = r.presence;
  bool known = false;
  std::uint64_t released = 0;
  if (p.births > 0 && p.awaits_confirmation && p.first_unacked_seq > 0) {
    released = p.first_unacked_seq - 1;
    known = true;
  }
  if (p.has_metrics && p.metrics.confirmed_through_seq > 0) {
    released = std::max(released, p.metrics.confirmed_through_seq);
    known = true;
  }
  if (known) {
    ingest_.settle(r, released);
    counters_.anchored += 1;
  }
}

void DeliveryConfirmer::give_up_dropped(AgentRecord& r) {
  // The agent holds nothing below held_from: what we miss there it dropped (its overflow
  // policy counted it), so no resend can come. What it was confirmed (by an earlier run) is
  // not a gap: step 3 settles that first.
  if (!r.presence.has_metrics || !r.events.seqs.anchored()) return;
  const auto& m = r.presence.metrics;
  const std::uint64_t have = r.events.seqs.settled_through();
  if (m.held_from_seq > have + 1 && m.confirmed_through_seq <= have)
    counters_.dropped_given_up += ingest_.give_up(r, m.held_from_seq - 1);
}

void DeliveryConfirmer::request_resend(AgentRecord& r, std::uint64_t from, std::int64_t now_ms) {
  // One request per agent per few seconds: the resend takes a moment to arrive.
  constexpr std::int64_t kMinRequestGapMs = 3000;
  auto& c = r.confirm;
  if (c.last_request_ms != 0 && now_ms - c.last_request_ms < kMinRequestGapMs) return;
  if (send(r, c.published, from, now_ms)) {
    counters_.resend_requests += 1;
    c.last_request_ms = now_ms;
  }
}

bool DeliveryConfirmer::take_watermark(AgentRecord& r, Mark& mark, bool caught_up, std::int64_t now_ms) {
  if (!r.has_events || (owns_ && !owns_(r.post))) return false;
  if (!r.events.seqs.anchored()) anchor(r);
  give_up_dropped(r);
  const auto& seqs = r.events.seqs;
  if (!seqs.anchored()) return false;  // nothing is confirmed or asked for until then
  const std::uint64_t through = seqs.settled_through();
  auto& c = r.confirm;
  if (through > c.marked) {
    c.marked = through;
    if (c.mark_seq == mark.seq) {
      mark.through[c.mark_index].second = through;  // merged into the newest mark: one entry each
    } else {
      c.mark_seq = mark.seq;
      c.mark_index = static_cast<std::uint32_t>(mark.through.size());
      mark.through.emplace_back(r.id, through);
      counters_.waiting_for_store += 1;
    }
  }
  // A hole below later seqs (seq 1 included: through is 0 then): one publisher, one topic,
  // QoS 1 keeps the order, so a hole still there a tick later is a loss, not a message on its way.
  const bool hole_below = seqs.highest() > through;
  const bool hole = hole_below && caught_up;
  if (hole && c.hole_at == through && !released_beyond(r, through)) request_resend(r, through + 1, now_ms);
  c.hole_at = hole ? through : ~std::uint64_t{0};
  return hole_below;
}

bool DeliveryConfirmer::compare_heartbeat(AgentRecord& r, bool caught_up, std::int64_t now_ms) {
  // Only when nothing is queued in front of ingest, and only once two heartbeats in a row
  // agree while our watermark stood still:
  //  - the agent already released seqs we miss (confirmed by an earlier run whose refused
  //    events left holes in the store): stop waiting for them;
  //  - the broker acknowledged seqs we miss and the agent still holds them: ask for a resend.
  const auto& p = r.presence;
  if (!p.has_metrics || (owns_ && !owns_(r.post))) return false;
  const auto sent = p.metrics.sent_through_seq, released = p.metrics.confirmed_through_seq;
  const std::uint64_t have = r.has_events ? r.events.seqs.settled_through() : 0;
  const bool behind = sent > have || released > have;
  auto& c = r.confirm;
  if (!caught_up || !behind) {
    c.stall_heartbeat_ms = 0;
    return behind;  // not caught up: look again once we are
  }
  if (c.stall_heartbeat_ms == 0 || c.stall_through != have) {
    c.stall_through = have;
    c.stall_heartbeat_ms = p.last_heartbeat_ms;
    return true;
  }
  if (p.last_heartbeat_ms <= c.stall_heartbeat_ms) return true;  // wait for the next heartbeat
  c.stall_heartbeat_ms = p.last_heartbeat_ms;                    // at most one action per heartbeat
  if (released > have) {
    if (r.has_events) {
      ingest_.settle(r, released);
      counters_.settled_by_agent += 1;
    }
  } else {
    request_resend(r, have + 1, now_ms);
  }
  return true;
}

void DeliveryConfirmer::tick(StoreProgress store, bool caught_up, std::int64_t now_ms) {
  // Whom to look at: windows that moved, agents heard from (a birth or heartbeat can anchor a
  // window or give seqs up), and those the last tick left with a hole or a disagreement.
  const auto moved = agents_.take_moved();
  const auto heard = agents_.take_heard();
  std::vector<AgentId> holes, disagrees;
  holes.swap(holes_);
  disagrees.swap(disagrees_);
  // 1. Take the watermarks that moved, tagged with what the store had been handed by now.
  if (marks_.size() < kMaxMarks)
    marks_.push_back(Mark{store.handed_over, {}, ++mark_seq_});
  else
    marks_.back().handed_over = store.handed_over;  // covers what it had, and what joins it now
  Mark& mark = marks_.back();
  // Each agent at most once per step: the lists overlap.
  std::vector<AgentId> todo;
  todo.reserve(moved.size() + heard.size() + holes.size());
  todo.insert(todo.end(), moved.begin(), moved.end());
  todo.insert(todo.end(), heard.begin(), heard.end());
  todo.insert(todo.end(), holes.begin(), holes.end());
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  for (auto id : todo)
    if (take_watermark(agents_[id], mark, caught_up, now_ms)) holes_.push_back(id);
  if (mark.through.empty()) marks_.pop_back();

  // 2. Publish what the store has made durable, oldest first.
  publish_committed(store, now_ms);

  // 3. Compare with what the agents' heartbeats say.
  todo.assign(heard.begin(), heard.end());
  todo.insert(todo.end(), disagrees.begin(), disagrees.end());
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  for (auto id : todo)
    if (compare_heartbeat(agents_[id], caught_up, now_ms)) disagrees_.push_back(id);

  // 4. A key rotation's notice, to agents whose report says it has not reached them.
  if (!next_key_.empty() || !retired_ids_.empty())
    for (auto id : heard) announce_keys(agents_[id], now_ms);
}

void DeliveryConfirmer::set_key_notice(std::optional<PublicKey> next, std::vector<std::string> retired_ids) {
  next_key_.clear();
  next_key_id_.clear();
  if (next) {
    next_key_.assign(next->begin(), next->end());
    next_key_id_ = key_id_of(*next);
  }
  retired_ids_ = std::move(retired_ids);
}

bool DeliveryConfirmer::needs_key_notice(const AgentRecord& r) const {
  const auto& ids = r.presence.aggregator_key_ids;
  if (ids.empty()) return false;  // not enrolled, or an agent from before rotation: it would not act on it
  auto has = [&](const std::string& id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); };
  if (!next_key_id_.empty() && !has(next_key_id_)) return true;
  return std::any_of(retired_ids_.begin(), retired_ids_.end(), has);
}

void DeliveryConfirmer::announce_keys(AgentRecord& r, std::int64_t now_ms) {
  auto& c = r.confirm;
  // Its last confirmation again (retained, as it was): never one below what a broker may hold
  // retained from an earlier run, so nothing before the first confirmation of this run.
  if (c.published == 0 || !r.presence.online || (owns_ && !owns_(r.post)) || !needs_key_notice(r)) return;
  if (c.last_notice_ms != 0 && now_ms - c.last_notice_ms < kNoticeGapMs) return;
  if (send(r, c.published, 0, now_ms)) {
    c.last_notice_ms = now_ms;
    counters_.key_notices += 1;
  }
}

void DeliveryConfirmer::publish_committed(StoreProgress store, std::int64_t now_ms) {
  while (!marks_.empty() && marks_.front().handed_over <= store.committed) {
    auto& front = marks_.front();
    bool failed = false;
    for (auto& [id, through] : front.through) {
      AgentRecord& r = agents_[id];
      if (through <= r.confirm.published) continue;  // a later mark already went out
      if (!send(r, through, 0, now_ms)) {
        failed = true;
        break;
      }
      r.confirm.published = through;
      counters_.confirms_published += 1;
    }
    if (failed) break;  // keep the mark; the next tick tries again
    counters_.waiting_for_store -= front.through.size();
    marks_.pop_front();
  }
}

}  // namespace postwatch::aggregator
