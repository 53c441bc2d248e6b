#include "postwatch/topics.hpp"

#include <array>

namespace postwatch::topics {

namespace {
std::string_view channel_name(Channel c) {
  switch (c) {
    case Channel::Events: return "events";
    case Channel::State: return "state";
    case Channel::Heartbeat: return "heartbeat";
    case Channel::Confirm: return "confirm";
    case Channel::Enrol: return "enrol";
    case Channel::Enrolled: return "enrolled";
  }
  return "events";
}
}  // namespace

std::string agent_topic(std::string_view region, std::string_view post, std::string_view agent, Channel channel) {
  std::string t;
  t.reserve(prefix.size() + region.size() + post.size() + agent.size() + 16);
  t.append(prefix).append("/").append(region).append("/").append(post).append("/").append(agent).append("/");
  t.append(channel_name(channel));
  return t;
}

std::string goal_feed(int goal) { return std::string(prefix) + "/feed/goals/" + std::to_string(goal); }
std::string pillar_feed(std::string_view pillar) {
  return std::string(prefix) + "/feed/pillars/" + std::string(pillar);
}
std::string progress_feed() { return std::string(prefix) + "/feed/progress"; }
std::string goal_progress_feed(int goal) { return progress_feed() + "/goals/" + std::to_string(goal); }

bool parse_agent_topic(std::string_view topic, AgentTopic& out) {
  if (topic.substr(0, prefix.size()) != prefix || topic.size() <= prefix.size() || topic[prefix.size()] != '/')
    return false;
  topic.remove_prefix(prefix.size() + 1);
  std::array<std::string_view, 4> parts;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto slash = topic.find('/');
    if (i + 1 < parts.size()) {
      if (slash == std::string_view::npos || slash == 0) return false;
      parts[i] = topic.substr(0, slash);
      topic.remove_prefix(slash + 1);
    } else {
      if (slash != std::string_view::npos || topic.empty()) return false;
      parts[i] = topic;
    }
  }
  if (parts[3] == "events")
    out.channel = Channel::Events;
  else if (parts[3] == "state")
    out.channel = Channel::State;
  else if (parts[3] == "heartbeat")
    out.channel = Channel::Heartbeat;
  else if (parts[3] == "confirm")
    out.channel = Channel::Confirm;
  else if (parts[3] == "enrol")
    out.channel = Channel::Enrol;
  else if (parts[3] == "enrolled")
    out.channel = Channel::Enrolled;
  else
    return false;
  out.region = parts[0];
  out.post = parts[1];
  out.agent = parts[2];
  return true;
}

}  // namespace postwatch::topics
