// MQTT topic layout (docs/wire-format.md):
//   postwatch/v1/<region>/<post>/<agent>/events     EventBatch, QoS 1
//   postwatch/v1/<region>/<post>/<agent>/state      AgentState birth/death, QoS 1, retained
//   postwatch/v1/<region>/<post>/<agent>/heartbeat  AgentState with metrics, QoS 0
//   postwatch/v1/<region>/<post>/<agent>/confirm    DeliveryConfirm from the aggregator, QoS 1, retained
//   postwatch/v1/<region>/<post>/<agent>/enrol      EnrolRequest from the agent, QoS 1
//   postwatch/v1/<region>/<post>/<agent>/enrolled   EnrolReply from the aggregator, QoS 1
//   postwatch/v1/feed/goals/<goal>                  aggregator's goal snapshot (JSON), retained
//   postwatch/v1/feed/pillars/<pillar>              aggregator's pillar snapshot (JSON), retained
//   postwatch/v1/feed/progress                      strategy progress, every target (JSON), retained
//   postwatch/v1/feed/progress/goals/<goal>         one goal's targets (JSON), retained
#pragma once

#include <string>
#include <string_view>

namespace postwatch::topics {

inline constexpr std::string_view prefix = "postwatch/v1";
inline constexpr std::string_view events_filter = "postwatch/v1/+/+/+/events";
inline constexpr std::string_view state_filter = "postwatch/v1/+/+/+/state";
inline constexpr std::string_view heartbeat_filter = "postwatch/v1/+/+/+/heartbeat";
inline constexpr std::string_view enrol_filter = "postwatch/v1/+/+/+/enrol";

enum class Channel { Events, State, Heartbeat, Confirm, Enrol, Enrolled };

std::string agent_topic(std::string_view region, std::string_view post, std::string_view agent, Channel channel);
std::string goal_feed(int goal);
std::string pillar_feed(std::string_view pillar);
std::string progress_feed();
std::string goal_progress_feed(int goal);

struct AgentTopic {
  std::string_view region, post, agent;
  Channel channel = Channel::Events;
};
// Parses an agent topic; false when it is not one.
bool parse_agent_topic(std::string_view topic, AgentTopic& out);

}  // namespace postwatch::topics
