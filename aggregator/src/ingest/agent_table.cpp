#include "ingest/agent_table.hpp"

#include "postwatch/topics.hpp"

namespace postwatch::aggregator {

AgentTable::AgentTable(const IndicatorCatalogue& catalogue)
    : catalogue_(catalogue), by_post_(catalogue.posts().size()) {}

AgentRecord& AgentTable::get(std::uint32_t post, std::string_view name) {
  if (auto* r = find(post, name)) return *r;
  auto& r = records_.emplace_back();
  r.id = static_cast<AgentId>(records_.size() - 1);
  r.post = post;
  r.name = std::string(name);
  const auto& p = catalogue_.posts()[post];
  r.confirm.topic = topics::agent_topic(p.region, p.id, r.name, topics::Channel::Confirm);
  index_.emplace(Key{post, r.name}, r.id);
  by_post_[post].push_back(r.id);
  return r;
}

AgentRecord* AgentTable::find(std::uint32_t post, std::string_view name) {
  auto it = index_.find(Key{post, name});
  return it == index_.end() ? nullptr : &records_[it->second];
}

const AgentRecord* AgentTable::find(std::uint32_t post, std::string_view name) const {
  auto it = index_.find(Key{post, name});
  return it == index_.end() ? nullptr : &records_[it->second];
}

const AgentRecord* AgentTable::find(std::string_view key) const {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return nullptr;
  auto post = catalogue_.post_index(key.substr(0, slash));
  return post ? find(*post, key.substr(slash + 1)) : nullptr;
}

AgentRecord* AgentTable::find(std::string_view key) {
  return const_cast<AgentRecord*>(static_cast<const AgentTable*>(this)->find(key));
}

std::string AgentTable::key(const AgentRecord& r) const { return catalogue_.posts()[r.post].id + "/" + r.name; }

void AgentTable::mark_moved(AgentRecord& r) {
  if (r.moved) return;
  r.moved = true;
  moved_.push_back(r.id);
}

void AgentTable::mark_heard(AgentRecord& r) {
  if (r.heard) return;
  r.heard = true;
  heard_.push_back(r.id);
}

std::vector<AgentId> AgentTable::take_moved() {
  std::vector<AgentId> ids;
  ids.swap(moved_);
  for (auto id : ids) records_[id].moved = false;
  return ids;
}

std::vector<AgentId> AgentTable::take_heard() {
  std::vector<AgentId> ids;
  ids.swap(heard_);
  for (auto id : ids) records_[id].heard = false;
  return ids;
}

}  // namespace postwatch::aggregator
