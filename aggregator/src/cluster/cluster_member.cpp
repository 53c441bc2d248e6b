#include "cluster/cluster_member.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {
std::string new_incarnation() {
  std::random_device rd;
  std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                    static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
  return buf;
}
}  // namespace

ClusterMember::ClusterMember(const IndicatorCatalogue& catalogue, IndicatorState& state, BatchIngest& ingest,
                             ClusterOptions options, ClusterHooks hooks, std::shared_ptr<spdlog::logger> log)
    : catalogue_(catalogue),
      state_(state),
      ingest_(ingest),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      log_(std::move(log)),
      incarnation_(new_incarnation()),
      started_at_ms_(now_utc_ms()),
      prefix_(std::string(topics::prefix) + "/cluster/" + options_.group + "/"),
      slots_(catalogue.posts().size()) {}

std::string ClusterMember::member_topic() const { return prefix_ + "members/" + options_.instance; }

std::string ClusterMember::offline_record() const {
  return json{{"format", 1}, {"state", "offline"}, {"instance", options_.instance}, {"incarnation", incarnation_}}
      .dump();
}

std::vector<std::string> ClusterMember::cluster_filters() const {
  return {prefix_ + "members/+", prefix_ + "partials/+"};
}

bool ClusterMember::is_cluster_topic(const std::string& topic) const { return topic.starts_with(prefix_); }

std::string ClusterMember::events_filter(std::uint32_t post) const {
  const auto& p = catalogue_.posts()[post];
  return std::string(topics::prefix) + "/" + p.region + "/" + p.id + "/+/events";
}

bool ClusterMember::self_member() const {
  const auto* me = view_.find(options_.instance);
  return me && me->incarnation == incarnation_;
}

void ClusterMember::publish_record() {
  json j = {{"format", 1},
            {"state", "online"},
            {"instance", options_.instance},
            {"incarnation", incarnation_},
            {"ready_view", ready_view_},
            {"started_at_ms", started_at_ms_}};
  hooks_.publish_retained(member_topic(), j.dump());
}

void ClusterMember::on_subscribed(std::int64_t now_ms) {
  // A reconnect resubscribed every filter we hold; the persistent session kept their messages.
  for (auto& s : slots_) s.granted = s.filter;
  if (self_member()) ready_view_ = view_.view();
  publish_record();
  for (std::uint32_t p = 0; p < slots_.size(); ++p) try_take_over(p, now_ms);
}

void ClusterMember::on_cluster_message(const std::string& topic, const std::string& payload, std::int64_t now_ms) {
  std::string_view rest(topic);
  rest.remove_prefix(prefix_.size());
  if (rest.starts_with("members/")) {
    std::string instance(rest.substr(8));
    json j = json::parse(payload, nullptr, false);
    bool online = j.is_object() && j.value("state", "") == "online";
    std::string incarnation = j.is_object() ? j.value("incarnation", "") : "";
    auto before = view_.view();
    bool was_member = self_member();
    if (online) {
      records_[instance] = {instance, incarnation, j.value("ready_view", ""),
                            j.value("started_at_ms", std::int64_t{0})};
    } else if (auto it = records_.find(instance);
               it != records_.end() && (incarnation.empty() || it->second.incarnation == incarnation)) {
      records_.erase(it);  // a will of an older incarnation must not remove a newer one
    }
    // Our own record says we are gone or someone else: we are alive, say so again.
    if (instance == options_.instance && (!online || incarnation != incarnation_)) publish_record();
    std::vector<ClusterMemberInfo> members;
    for (const auto& [name, info] : records_) members.push_back(info);
    view_ = PartitionMap(std::move(members));
    if (!was_member && self_member()) {
      // Back in the view after the others saw us gone (or first joining): whatever we held
      // may have been taken over meanwhile, so claim it again by the normal rules.
      for (auto& s : slots_)
        if (s.role == Role::Owner) {
          s.role = Role::Pending;
          s.pending_since_ms = now_ms;
        }
    }
    if (view_.view() != before) {
      log_->info("cluster {}: view {} with {} member(s)", options_.group, view_.view(), view_.members().size());
      recompute(now_ms);
    } else {
      release_ready_posts(now_ms);
    }
    return;
  }
  if (!rest.starts_with("partials/")) return;
  PostPartial p;
  if (payload.empty()) return;  // a cleared retained partial
  if (auto err = decode_partial(payload, catalogue_, p); !err.empty()) {
    if (++counters_.partials_refused <= 20) log_->warn("cluster: refused partial on {}: {}", topic, err);
    return;
  }
  std::uint32_t post = *catalogue_.post_index(p.post);
  Slot& s = slots_[post];
  if (p.owner == options_.instance && p.incarnation == incarnation_) return;  // our own, echoed
  s.have_partial = true;
  s.p_owner = p.owner;
  s.p_incarnation = p.incarnation;
  s.p_released_for = p.released_for;
  if (s.role == Role::Owner) {
    if (p.released_for != view_.view()) {
      log_->debug("cluster: {} also published post {} while we own it", p.owner, p.post);
      return;
    }
    // Two owners at once (both joined before either saw the other): the other hands its
    // state to us. Take it, then our own stored events of the post on top, through dedupe.
    state_.import_post(post, p.rows);
    ingest_.import_agents(post, p.agents);
    hooks_.replay_local(post);
    s.dirty = true;
    counters_.partials_merged += 1;
    log_->warn("cluster: merged post {} from {}, which held it beside us", p.post, p.owner);
    return;
  }
  state_.import_post(post, p.rows);
  ingest_.import_agents(post, p.agents);
  counters_.partials_merged += 1;
  trim(s, p);
  try_take_over(post, now_ms);
}

void ClusterMember::trim(Slot& slot, const PostPartial& p) {
  auto before = slot.buffer.size();
  std::erase_if(slot.buffer, [&](const Buffered& b) { return b.highest_seq <= p.highest_seq(b.agent); });
  buffered_ -= before - slot.buffer.size();
}

void ClusterMember::recompute(std::int64_t now_ms) {
  if (!self_member()) return;  // not (yet, or no longer) in the view: claim nothing
  ready_view_.clear();
  for (std::uint32_t p = 0; p < slots_.size(); ++p) {
    const std::string& id = catalogue_.posts()[p].id;
    auto ranked = view_.ranked(id);
    bool owner = !ranked.empty() && ranked[0]->instance == options_.instance;
    bool backup = ranked.size() > 1 && ranked[1]->instance == options_.instance;
    Slot& s = slots_[p];
    Role next = s.role;
    switch (s.role) {
      case Role::Owner: break;  // held until released (release_ready_posts)
      case Role::Pending: next = owner ? Role::Pending : backup ? Role::Backup : Role::None; break;
      default: next = owner ? Role::Pending : backup ? Role::Backup : Role::None;
    }
    if (next == Role::Pending && s.role != Role::Pending) s.pending_since_ms = now_ms;
    if (next == Role::None) {
      buffered_ -= s.buffer.size();
      s.buffer.clear();
    }
    s.role = next;
  }
  sync_filters();
  release_ready_posts(now_ms);
  for (std::uint32_t p = 0; p < slots_.size(); ++p) try_take_over(p, now_ms);
}

void ClusterMember::sync_filters() {
  std::vector<std::string> add, remove;
  std::vector<std::uint32_t> added;
  for (std::uint32_t p = 0; p < slots_.size(); ++p) {
    Slot& s = slots_[p];
    bool want = s.role != Role::None;
    if (want && !s.filter) {
      add.push_back(events_filter(p));
      added.push_back(p);
      s.filter = true;
      s.granted = false;
    } else if (!want && s.filter) {
      remove.push_back(events_filter(p));
      s.filter = s.granted = false;
    }
  }
  auto generation = ++filter_generation_;
  auto view = view_.view();
  hooks_.change_filters(add, remove, [this, added = std::move(added), generation, view](bool granted) {
    if (!granted) {
      log_->error("cluster: the broker refused {} event subscription(s); retrying", added.size());
      for (auto p : added) slots_[p].filter = false;
      sync_filters();
      return;
    }
    for (auto p : added)
      if (slots_[p].filter) slots_[p].granted = true;
    if (generation != filter_generation_ || view != view_.view()) return;  // a newer change is on its way
    ready_view_ = view;
    publish_record();
    log_->info("cluster {}: subscribed for view {}: {} post(s) to own, {} to back up", options_.group, view,
               std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.role >= Role::Pending; }),
               std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.role == Role::Backup; }));
    auto now = now_utc_ms();
    for (std::uint32_t p = 0; p < slots_.size(); ++p) try_take_over(p, now);
  });
}

void ClusterMember::try_take_over(std::uint32_t post, std::int64_t now_ms) {
  Slot& s = slots_[post];
  if (s.role != Role::Pending || !s.granted) return;
  bool free = !s.have_partial || s.p_owner == options_.instance || s.p_released_for == view_.view();
  if (!free) {
    const auto* holder = view_.find(s.p_owner);
    free = !holder || holder->incarnation != s.p_incarnation;  // its holder is gone
  }
  if (free)
    take_over(post, now_ms, false);
  else if (now_ms - s.pending_since_ms >= options_.release_timeout_ms)
    take_over(post, now_ms, true);
}

void ClusterMember::take_over(std::uint32_t post, std::int64_t now_ms, bool forced) {
  Slot& s = slots_[post];
  // The latest partial is in the state already (merged on arrival); what the backup buffer
  // holds beyond it and what this instance stored itself go on top, through dedupe.
  std::size_t replayed = s.buffer.size();
  for (const auto& b : s.buffer) hooks_.apply(b.topic, b.payload, b.received_ms);
  buffered_ -= s.buffer.size();
  s.buffer.clear();
  hooks_.replay_local(post);
  s.role = Role::Owner;
  counters_.takeovers += 1;
  counters_.buffered_replayed += replayed;
  if (forced) {
    counters_.forced_takeovers += 1;
    log_->warn("cluster: took post {} over from {} without its release ({} ms)", catalogue_.posts()[post].id, s.p_owner,
               now_ms - s.pending_since_ms);
  } else {
    log_->debug("cluster: took post {} over ({} buffered message(s) replayed)", catalogue_.posts()[post].id, replayed);
  }
  publish_partial(post, now_ms, "");  // claims the post: the next owner waits for our release
}

void ClusterMember::release_ready_posts(std::int64_t now_ms) {
  if (!self_member()) return;
  bool changed = false;
  for (std::uint32_t p = 0; p < slots_.size(); ++p) {
    Slot& s = slots_[p];
    if (s.role != Role::Owner) continue;
    auto ranked = view_.ranked(catalogue_.posts()[p].id);
    if (ranked.empty() || ranked[0]->instance == options_.instance) continue;
    if (ranked[0]->ready_view != view_.view()) continue;  // not subscribed yet: keep applying
    publish_partial(p, now_ms, view_.view());
    s.role = ranked.size() > 1 && ranked[1]->instance == options_.instance ? Role::Backup : Role::None;
    counters_.releases += 1;
    changed = true;
  }
  if (changed) sync_filters();
}

void ClusterMember::publish_partial(std::uint32_t post, std::int64_t now_ms, const std::string& released_for) {
  PostPartial p;
  p.post = catalogue_.posts()[post].id;
  p.owner = options_.instance;
  p.incarnation = incarnation_;
  p.version = ++version_;
  p.released_for = released_for;
  p.published_at_ms = now_ms;
  p.rows = state_.export_post(post);
  p.agents = ingest_.export_agents(post);
  Slot& s = slots_[post];
  if (hooks_.publish_retained(prefix_ + "partials/" + p.post, encode_partial(p, catalogue_))) {
    s.dirty = false;
    s.last_publish_ms = now_ms;
    counters_.partials_published += 1;
  }
}

void ClusterMember::on_events(std::uint32_t post, const std::string& topic, const std::string& payload,
                              std::int64_t now_ms) {
  Slot& s = slots_[post];
  switch (s.role) {
    case Role::Owner:
      hooks_.apply(topic, payload, now_ms);
      s.dirty = true;
      return;
    case Role::None: counters_.messages_not_ours += 1; return;
    default: break;
  }
  topics::AgentTopic t;
  std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()};
  Buffered b{topic, payload, {}, 0, now_ms};
  if (topics::parse_agent_topic(topic, t)) b.agent = std::string(t.agent);
  if (decode_batch(bytes, scratch_) == DecodeError::None)
    for (const auto& e : scratch_.events) b.highest_seq = std::max(b.highest_seq, e.seq);
  else
    b.highest_seq = UINT64_MAX;  // never trimmed: the owner-to-be refuses and counts it
  s.buffer.push_back(std::move(b));
  counters_.messages_buffered += 1;
  if (++buffered_ > options_.max_buffered_messages) {
    s.buffer.pop_front();
    --buffered_;
    if (++counters_.buffer_overflow_drops % 1000 == 1)
      log_->error("cluster: backup buffer full ({} messages): dropping the oldest; is the owner of {} stuck?",
                  options_.max_buffered_messages, catalogue_.posts()[post].id);
  }
}

void ClusterMember::tick(std::int64_t now_ms) {
  for (std::uint32_t p = 0; p < slots_.size(); ++p) {
    Slot& s = slots_[p];
    if (s.role == Role::Owner && s.dirty && now_ms - s.last_publish_ms >= options_.partial_interval_ms)
      publish_partial(p, now_ms, "");
    else if (s.role == Role::Pending)
      try_take_over(p, now_ms);
  }
  release_ready_posts(now_ms);
}

void ClusterMember::leave(std::int64_t now_ms) {
  for (std::uint32_t p = 0; p < slots_.size(); ++p)
    if (slots_[p].role == Role::Owner) publish_partial(p, now_ms, "");
  hooks_.publish_retained(member_topic(), offline_record());
}

bool ClusterMember::ready() const {
  return self_member() && ready_view_ == view_.view() &&
         std::none_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.role == Role::Pending; });
}

bool ClusterMember::leader() const {
  const auto* l = view_.leader();
  return l && l->instance == options_.instance && self_member();
}

bool ClusterMember::owns(std::uint32_t post) const { return post < slots_.size() && slots_[post].role == Role::Owner; }

json ClusterMember::status_json() const {
  json members = json::array();
  for (const auto& m : view_.members())
    members.push_back({{"instance", m.instance},
                       {"incarnation", m.incarnation},
                       {"ready", m.ready_view == view_.view()},
                       {"started_at_ms", m.started_at_ms}});
  std::size_t roles[4] = {0, 0, 0, 0};
  json owned = json::array();
  for (std::uint32_t p = 0; p < slots_.size(); ++p) {
    roles[static_cast<int>(slots_[p].role)] += 1;
    if (slots_[p].role == Role::Owner) owned.push_back(catalogue_.posts()[p].id);
  }
  return {{"group", options_.group},
          {"instance", options_.instance},
          {"incarnation", incarnation_},
          {"view", view_.view()},
          {"members", std::move(members)},
          {"ready", ready()},
          {"leader", leader()},
          {"posts", {{"owned", roles[3]}, {"pending", roles[2]}, {"backup", roles[1]}, {"none", roles[0]}}},
          {"owned", std::move(owned)},
          {"buffered_messages", buffered_},
          {"counters",
           {{"takeovers", counters_.takeovers},
            {"forced_takeovers", counters_.forced_takeovers},
            {"releases", counters_.releases},
            {"partials_published", counters_.partials_published},
            {"partials_merged", counters_.partials_merged},
            {"partials_refused", counters_.partials_refused},
            {"messages_buffered", counters_.messages_buffered},
            {"buffered_replayed", counters_.buffered_replayed},
            {"buffer_overflow_drops", counters_.buffer_overflow_drops},
            {"messages_not_ours", counters_.messages_not_ours}}}};
}

}  // namespace postwatch::aggregator
