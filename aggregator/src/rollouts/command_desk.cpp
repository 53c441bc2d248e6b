#include "rollouts/command_desk.hpp"

#include "rollouts/durable_file.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace postwatch::aggregator {

namespace {

using json = nlohmann::json;
constexpr std::size_t kKept = 1000;  // answered or expired commands kept for the API

std::uint64_t number_of(const std::string& id) {
  if (id.size() < 2 || id[0] != 'c') return 0;
  std::uint64_t n = 0;
  for (std::size_t i = 1; i < id.size(); ++i) {
    if (id[i] < '0' || id[i] > '9') return 0;
    n = n * 10 + static_cast<std::uint64_t>(id[i] - '0');
  }
  return n;
}

}  // namespace

std::string_view to_string(SentCommand::State s) {
  switch (s) {
    case SentCommand::State::Pending: return "pending";
    case SentCommand::State::Done: return "done";
    case SentCommand::State::Failed: return "failed";
    case SentCommand::State::Expired: return "expired";
  }
  return "pending";
}

json SentCommand::to_json() const {
  json j{{"id", command.id},
         {"command", command.name},
         {"post", post},
         {"agent", agent},
         {"by", by},
         {"issued_at_ms", issued_at_ms},
         {"expires_at_ms", command.expires_at_ms},
         {"state", to_string(state)}};
  if (command.name == "resend-from") j["seq"] = command.seq;
  if (command.name == "run-probe") j["probe"] = command.probe;
  if (answered_at_ms) j["answered_at_ms"] = answered_at_ms;
  if (state == State::Failed) j["error"] = error;
  if (state == State::Done) j["result"] = json::parse(result_json.empty() ? "{}" : result_json, nullptr, false);
  return j;
}

CommandDesk::CommandDesk(std::filesystem::path file, std::shared_ptr<spdlog::logger> log)
    : file_(std::move(file)), log_(std::move(log)) {
  std::ifstream in(file_);
  if (!in) return;
  auto j = json::parse(in, nullptr, false);
  if (!j.is_array()) {
    log_->error("{}: not a list of commands; starting without them", file_.string());
    return;
  }
  for (const auto& c : j) {
    try {
      SentCommand s;
      s.command.id = c.at("id").get<std::string>();
      s.command.name = c.at("command").get<std::string>();
      s.command.seq = c.value("seq", std::uint64_t{0});
      s.command.probe = c.value("probe", std::string());
      s.command.expires_at_ms = c.at("expires_at_ms").get<std::int64_t>();
      s.post = c.at("post").get<std::string>();
      s.agent = c.at("agent").get<std::string>();
      s.by = c.value("by", std::string());
      s.issued_at_ms = c.value("issued_at_ms", std::int64_t{0});
      s.answered_at_ms = c.value("answered_at_ms", std::int64_t{0});
      const auto state = c.value("state", std::string("pending"));
      for (auto st : {SentCommand::State::Pending, SentCommand::State::Done, SentCommand::State::Failed,
                      SentCommand::State::Expired})
        if (to_string(st) == state) s.state = st;
      s.error = c.value("error", std::string());
      if (c.contains("result")) s.result_json = c["result"].dump();
      if (auto n = number_of(s.command.id); n != 0) commands_.emplace(n, std::move(s));
    } catch (const json::exception& e) {
      log_->error("{}: a command dropped: {}", file_.string(), e.what());
    }
  }
}

const SentCommand& CommandDesk::send(const std::string& post, const std::string& agent, FleetCommand command,
                                     std::int64_t ttl_ms, const std::string& by, std::int64_t now_ms,
                                     const Publish& publish) {
  if (ttl_ms < 1000 || ttl_ms > kMaxTtlMs) throw std::invalid_argument("ttl_s must be 1 to 604800 (7 days)");
  const std::uint64_t n = commands_.empty() ? 1 : commands_.rbegin()->first + 1;
  command.id = "c" + std::to_string(n);
  command.expires_at_ms = now_ms + ttl_ms;
  if (auto why = check_fleet_command(command); !why.empty()) throw std::invalid_argument(why);
  SentCommand s;
  s.command = std::move(command);
  s.post = post;
  s.agent = agent;
  s.by = by;
  s.issued_at_ms = now_ms;
  auto& kept = commands_.emplace(n, std::move(s)).first->second;
  log_->info("command {} ({}) for {}/{} by {}, expires in {} s", kept.command.id, kept.command.name, post, agent, by,
             ttl_ms / 1000);
  publish_list(post, agent, publish);
  save();
  return kept;
}

bool CommandDesk::on_result(const std::string& post, const std::string& agent, const FleetCommandResult& r,
                            std::int64_t now_ms, const Publish& publish) {
  auto it = commands_.find(number_of(r.id));
  if (it == commands_.end() || it->second.post != post || it->second.agent != agent ||
      it->second.state != SentCommand::State::Pending)
    return false;
  auto& s = it->second;
  s.state = r.ok ? SentCommand::State::Done : SentCommand::State::Failed;
  s.answered_at_ms = now_ms;
  s.error = r.error;
  s.result_json = r.result_json;
  if (r.ok)
    log_->info("command {} ({}) done by {}/{}", r.id, s.command.name, post, agent);
  else
    log_->warn("command {} ({}) failed on {}/{}: {}", r.id, s.command.name, post, agent, r.error);
  publish_list(post, agent, publish);
  save();
  return true;
}

void CommandDesk::tick(std::int64_t now_ms, const Publish& publish) {
  std::vector<std::pair<std::string, std::string>> changed;
  for (auto& [_, s] : commands_)
    if (s.state == SentCommand::State::Pending && now_ms >= s.command.expires_at_ms) {
      s.state = SentCommand::State::Expired;
      log_->warn("command {} ({}) for {}/{} expired unanswered", s.command.id, s.command.name, s.post, s.agent);
      changed.emplace_back(s.post, s.agent);
    }
  if (changed.empty()) return;
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  for (const auto& [post, agent] : changed) publish_list(post, agent, publish);
  save();
}

void CommandDesk::publish_list(const std::string& post, const std::string& agent, const Publish& publish) const {
  std::vector<FleetCommand> pending;
  for (const auto& [_, s] : commands_)
    if (s.post == post && s.agent == agent && s.state == SentCommand::State::Pending) pending.push_back(s.command);
  // Nothing pending: the retained message goes (an empty retained payload clears it).
  publish(command_topic(post, agent), pending.empty() ? std::string() : encode_fleet_commands(pending));
}

const SentCommand* CommandDesk::find(const std::string& id) const {
  auto it = commands_.find(number_of(id));
  return it == commands_.end() ? nullptr : &it->second;
}

std::vector<const SentCommand*> CommandDesk::newest(std::size_t limit) const {
  std::vector<const SentCommand*> out;
  for (auto it = commands_.rbegin(); it != commands_.rend() && out.size() < limit; ++it) out.push_back(&it->second);
  return out;
}

std::size_t CommandDesk::count(SentCommand::State state) const {
  return static_cast<std::size_t>(
      std::count_if(commands_.begin(), commands_.end(), [&](const auto& kv) { return kv.second.state == state; }));
}

void CommandDesk::save() const {
  // Answered and expired ones beyond the newest kKept go; pending ones always stay.
  json all = json::array();
  std::size_t ended = 0;
  for (auto it = commands_.rbegin(); it != commands_.rend(); ++it) {
    if (it->second.state != SentCommand::State::Pending && ++ended > kKept) continue;
    all.push_back(it->second.to_json());
  }
  const std::string text = all.dump(1) + "\n";
  try {
    replace_file_durably(file_, text);
  } catch (const std::runtime_error& e) {
    log_->error("cannot write the commands: {}; they go on in memory", e.what());
  }
}

}  // namespace postwatch::aggregator
