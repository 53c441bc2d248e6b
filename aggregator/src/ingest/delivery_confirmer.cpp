#include "ingest/delivery_confirmer.hpp"

#include "ingest/agent_presence.hpp"
#include "ingest/batch_ingest.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <unordered_set>

namespace postwatch::aggregator {

DeliveryConfirmer::DeliveryConfirmer(const IndicatorCatalogue& catalogue, Publish publish, Owns owns)
    : catalogue_(catalogue), publish_(std::move(publish)), owns_(std::move(owns)) {}

DeliveryConfirmer::AgentConfirm& DeliveryConfirmer::entry(const std::string& key, std::uint32_t post,
                                                          std::string_view agent) {
  auto [it, fresh] = agents_.try_emplace(key);
  if (fresh) {
    const auto& p = catalogue_.posts()[post];
    it->second.post = post;
    it->second.agent = std::string(agent);
    it->second.topic = topics::agent_topic(p.region, p.id, agent, topics::Channel::Confirm);
  }
  return it->second;
}

bool DeliveryConfirmer::send(AgentConfirm& a, std::uint64_t through, std::uint64_t resend_from, std::int64_t now_ms) {
  DeliveryConfirm c{a.agent, catalogue_.posts()[a.post].id, through, now_ms, resend_from};
  auto payload = encode_delivery_confirm(c);
  // The confirmation is retained (a reconnecting agent hears the latest at once); a resend
  // request is not (it would be replayed to the agent on every reconnect).
  if (!publish_(a.topic, payload, resend_from == 0)) {
    counters_.publish_failures += 1;
    return false;
  }
  return true;
}

namespace {
// Whether the agent's last heartbeat says it released seqs beyond `through` (then it cannot
// resend them, and step 3 settles the window instead).
bool released_beyond(const AgentPresence& presence, const std::string& key, std::uint64_t through) {
  auto it = presence.agents().find(key);
  return it != presence.agents().end() && it->second.has_metrics && it->second.metrics.confirmed_through_seq > through;
}
}  // namespace

void DeliveryConfirmer::anchor(BatchIngest& ingest, const AgentPresence& presence, const std::string& key) {
  // The birth of an agent that keeps events until confirmed says where its spool started at
  // connect (it holds nothing below), and a heartbeat what was confirmed to it: either tells
  // which unseen seqs below the first one we saw are still to come. Without them, nothing is
  // confirmed (SeqWindow, top of file). An agent that releases on PUBACK holds nothing to
  // resend: its window stays unanchored, and seqs below the first one seen are not gaps.
  auto it = presence.agents().find(key);
  if (it == presence.agents().end()) return;
  const auto& rec = it->second;
  bool known = false;
  std::uint64_t released = 0;
  if (rec.births > 0 && rec.awaits_confirmation && rec.first_unacked_seq > 0) {
    released = rec.first_unacked_seq - 1;
    known = true;
  }
  if (rec.has_metrics && rec.metrics.confirmed_through_seq > 0) {
    released = std::max(released, rec.metrics.confirmed_through_seq);
    known = true;
  }
  if (known && ingest.settle_agent(key, released)) counters_.anchored += 1;
}

void DeliveryConfirmer::give_up_dropped(BatchIngest& ingest, const AgentPresence& presence, const std::string& key,
                                        const AgentTrack& track) {
  // The agent holds nothing below held_from: what we miss there it dropped (its overflow
  // policy counted it), so no resend can come. What it was confirmed (by an earlier run) is
  // not a gap: step 3 settles that first.
  auto it = presence.agents().find(key);
  if (it == presence.agents().end() || !it->second.has_metrics || !track.seqs.anchored()) return;
  const auto& m = it->second.metrics;
  const std::uint64_t have = track.seqs.settled_through();
  if (m.held_from_seq > have + 1 && m.confirmed_through_seq <= have)
    counters_.dropped_given_up += ingest.give_up_agent(key, m.held_from_seq - 1);
}

void DeliveryConfirmer::request_resend(AgentConfirm& a, std::uint64_t from, std::int64_t now_ms) {
  // One request per agent per few seconds: the resend takes a moment to arrive.
  constexpr std::int64_t kMinRequestGapMs = 3000;
  if (a.last_request_ms != 0 && now_ms - a.last_request_ms < kMinRequestGapMs) return;
  if (send(a, a.published, from, now_ms)) {
    counters_.resend_requests += 1;
    a.last_request_ms = now_ms;
  }
}

bool DeliveryConfirmer::take_watermark(BatchIngest& ingest, const AgentPresence& presence, const std::string& key,
                                       Mark& mark, bool caught_up, std::int64_t now_ms) {
  auto it = ingest.agents().find(key);
  if (it == ingest.agents().end()) return false;
  const AgentTrack& track = it->second;
  if (owns_ && !owns_(track.post)) return false;
  if (!track.seqs.anchored()) anchor(ingest, presence, key);
  give_up_dropped(ingest, presence, key, track);
  std::uint64_t through = track.seqs.settled_through();
  if (through == 0) return false;
  auto slash = key.find('/');
  AgentConfirm& a = entry(key, track.post, std::string_view(key).substr(slash + 1));
  if (through > a.marked) {
    a.marked = through;
    mark.through.emplace_back(&a, through);
  }
  // A hole below later seqs: one publisher, one topic, QoS 1 keeps the order, so a hole
  // still there a tick later is a loss, not a message on its way.
  const bool hole_below = track.seqs.highest() > through;
  const bool hole = hole_below && caught_up;
  if (hole && a.hole_at == through && !released_beyond(presence, key, through)) request_resend(a, through + 1, now_ms);
  a.hole_at = hole ? through : ~std::uint64_t{0};
  return hole_below;
}

bool DeliveryConfirmer::compare_heartbeat(BatchIngest& ingest, const AgentPresenceRecord& rec, const std::string& key,
                                          bool caught_up, std::int64_t now_ms) {
  // Only when nothing is queued in front of ingest, and only once two heartbeats in a row
  // agree while our watermark stood still:
  //  - the agent already released seqs we miss (confirmed by an earlier run whose refused
  //    events left holes in the store): stop waiting for them;
  //  - the broker acknowledged seqs we miss and the agent still holds them: ask for a resend.
  if (!rec.has_metrics) return false;
  const auto sent = rec.metrics.sent_through_seq, released = rec.metrics.confirmed_through_seq;
  auto post = catalogue_.post_index(rec.post);
  if (!post || (owns_ && !owns_(*post))) return false;
  auto track = ingest.agents().find(key);
  std::uint64_t have = track == ingest.agents().end() ? 0 : track->second.seqs.settled_through();
  const bool behind = sent > have || released > have;
  if (!caught_up || !behind) {
    if (auto it = agents_.find(key); it != agents_.end()) it->second.stall_heartbeat_ms = 0;
    return behind;  // not caught up: look again once we are
  }
  AgentConfirm& a = entry(key, *post, rec.agent);
  if (a.stall_heartbeat_ms == 0 || a.stall_through != have) {
    a.stall_through = have;
    a.stall_heartbeat_ms = rec.last_heartbeat_ms;
    return true;
  }
  if (rec.last_heartbeat_ms <= a.stall_heartbeat_ms) return true;  // wait for the next heartbeat
  a.stall_heartbeat_ms = rec.last_heartbeat_ms;                    // at most one action per heartbeat
  if (released > have) {
    if (ingest.settle_agent(key, released)) counters_.settled_by_agent += 1;
  } else {
    request_resend(a, have + 1, now_ms);
  }
  return true;
}

void DeliveryConfirmer::tick(BatchIngest& ingest, AgentPresence& presence, StoreProgress store, bool caught_up,
                             std::int64_t now_ms) {
  // Whom to look at: windows that moved, agents heard from (a birth or heartbeat can anchor a
  // window or give seqs up), and those the last tick left with a hole or a disagreement.
  const auto moved = ingest.take_moved();
  const auto heard = presence.take_heard();
  std::vector<std::string> holes, disagrees;
  holes.swap(holes_);
  disagrees.swap(disagrees_);

  // 1. Take the watermarks that moved, tagged with what the store had been handed by now.
  Mark mark{store.handed_over, {}};
  std::unordered_set<std::string_view> seen;
  auto step1 = [&](const std::string& key) {
    if (seen.insert(key).second && take_watermark(ingest, presence, key, mark, caught_up, now_ms))
      holes_.push_back(key);
  };
  for (const auto* key : moved) step1(*key);
  for (const auto* key : heard) step1(*key);
  for (const auto& key : holes) step1(key);
  if (!mark.through.empty()) {
    counters_.waiting_for_store += mark.through.size();
    marks_.push_back(std::move(mark));
  }

  // 2. Publish what the store has made durable, oldest first.
  publish_committed(store, now_ms);

  // 3. Compare with what the agents' heartbeats say.
  seen.clear();
  auto step3 = [&](const std::string& key) {
    if (!seen.insert(key).second) return;
    auto it = presence.agents().find(key);
    if (it != presence.agents().end() && compare_heartbeat(ingest, it->second, key, caught_up, now_ms))
      disagrees_.push_back(key);
  };
  for (const auto* key : heard) step3(*key);
  for (const auto& key : disagrees) step3(key);
}

void DeliveryConfirmer::publish_committed(StoreProgress store, std::int64_t now_ms) {
  while (!marks_.empty() && marks_.front().handed_over <= store.committed) {
    auto& front = marks_.front();
    bool failed = false;
    for (auto& [a, through] : front.through) {
      if (through <= a->published) continue;  // a later mark already went out
      if (!send(*a, through, 0, now_ms)) {
        failed = true;
        break;
      }
      a->published = through;
      counters_.confirms_published += 1;
    }
    if (failed) break;  // keep the mark; the next tick tries again
    counters_.waiting_for_store -= front.through.size();
    marks_.pop_front();
  }
}

std::uint64_t DeliveryConfirmer::confirmed_through(const std::string& key) const {
  auto it = agents_.find(key);
  return it == agents_.end() ? 0 : it->second.published;
}

}  // namespace postwatch::aggregator
