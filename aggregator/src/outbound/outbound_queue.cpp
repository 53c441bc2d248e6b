#include "outbound/outbound_queue.hpp"

#include <algorithm>

namespace postwatch::aggregator {

std::string_view to_string(OutboundPriority p) {
  switch (p) {
    case OutboundPriority::Urgent: return "urgent";
    case OutboundPriority::Confirm: return "confirm";
    case OutboundPriority::Snapshot: return "snapshot";
  }
  return "?";
}

std::string_view to_string(OutboundDrop d) {
  switch (d) {
    case OutboundDrop::Overflow: return "overflow";
    case OutboundDrop::Shutdown: return "shutdown";
  }
  return "?";
}

std::uint64_t OutboundCounters::dropped_total() const {
  std::uint64_t n = 0;
  for (auto d : dropped) n += d;
  return n;
}

OutboundQueue::OutboundQueue(OutboundLimits limits) : limits_(limits) {
  limits_.window = std::max<std::size_t>(limits_.window, 1);
}

void OutboundQueue::enqueue_retained(OutboundMessage m, bool front) {
  auto& q = queues_[static_cast<std::size_t>(m.priority)];
  auto& t = topics_[m.topic];
  if (!t.waiting) {
    if (front)
      q.push_front(Entry{m.topic, std::nullopt});
    else
      q.push_back(Entry{m.topic, std::nullopt});
    t.waiting = true;
  } else {
    counters_.coalesced += 1;  // the older waiting value never goes out
  }
  t.value = std::move(m);
}

void OutboundQueue::push(OutboundMessage m) {
  counters_.queued[static_cast<std::size_t>(m.priority)] += 1;
  if (m.retained) {
    auto& t = topics_[m.topic];
    t.generation += 1;
    // A value waiting under another priority keeps its place; the new value takes it over.
    if (t.waiting) m.priority = t.value.priority;
    enqueue_retained(std::move(m), false);
    return;
  }
  if (notices_waiting_ >= limits_.max_notices) {
    counters_.dropped[static_cast<std::size_t>(OutboundDrop::Overflow)] += 1;
    return;
  }
  notices_waiting_ += 1;
  auto& q = queues_[static_cast<std::size_t>(m.priority)];
  std::string topic = m.topic;
  q.push_back(Entry{std::move(topic), std::move(m)});
}

std::optional<OutboundQueue::Ticket> OutboundQueue::take() {
  if (!has_room()) return std::nullopt;
  for (auto& q : queues_) {
    if (q.empty()) continue;
    Entry e = std::move(q.front());
    q.pop_front();
    InFlight f;
    if (e.notice) {
      notices_waiting_ -= 1;
      f.message = std::move(*e.notice);
    } else {
      auto& t = topics_.at(e.topic);
      t.waiting = false;
      f.message = std::move(t.value);
      f.generation = t.generation;
    }
    const std::uint64_t id = next_id_++;
    auto& slot = in_flight_.emplace(id, std::move(f)).first->second;
    return Ticket{id, &slot.message};
  }
  return std::nullopt;
}

void OutboundQueue::completed(std::uint64_t id, bool ok) {
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  InFlight f = std::move(it->second);
  in_flight_.erase(it);
  const auto p = static_cast<std::size_t>(f.message.priority);
  if (ok) {
    counters_.published[p] += 1;
    return;
  }
  counters_.retried += 1;
  if (!f.message.retained) {
    notices_waiting_ += 1;  // a failed notice may exceed max_notices: it was admitted once
    std::string topic = f.message.topic;
    queues_[p].push_front(Entry{std::move(topic), std::move(f.message)});
    return;
  }
  auto& t = topics_[f.message.topic];
  if (t.generation != f.generation) {
    counters_.coalesced += 1;  // a newer value is queued or on its way
    return;
  }
  enqueue_retained(std::move(f.message), true);
}

std::size_t OutboundQueue::drop_waiting(OutboundDrop why) {
  std::size_t n = waiting();
  for (auto& q : queues_) q.clear();
  for (auto& [_, t] : topics_) t.waiting = false;
  notices_waiting_ = 0;
  counters_.dropped[static_cast<std::size_t>(why)] += n;
  return n;
}

std::size_t OutboundQueue::waiting() const {
  std::size_t n = 0;
  for (const auto& q : queues_) n += q.size();
  return n;
}

std::uint64_t OutboundQueue::oldest_in_flight() const {
  std::uint64_t oldest = 0;
  for (const auto& [id, _] : in_flight_)
    if (oldest == 0 || id < oldest) oldest = id;
  return oldest;
}

}  // namespace postwatch::aggregator
