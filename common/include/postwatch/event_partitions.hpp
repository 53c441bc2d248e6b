// How a NATS cluster carries the events of a clustered deployment (docs/scale-out.md): the
// broker's subject mapping puts every agent of a post on one partition subject, a replicated
// JetStream stream captures them, and each aggregator instance holds some partitions. The
// broker config generator and the aggregator both take the layout from here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace postwatch::partitions {

inline constexpr std::string_view events_stream = "POSTWATCH_EVENTS";
inline constexpr std::uint32_t default_count = 16;

// The NATS subject an agent's MQTT events topic arrives on (NATS turns '/' into '.').
inline constexpr std::string_view mapping_source = "postwatch.v1.*.*.*.events";
// What the broker maps it to: postwatch-events.<partition>.<region>.<post>.<agent>.
std::string mapping_destination(std::uint32_t count);
// The stream's subjects, and one partition's.
std::string all_subjects();
std::string partition_subjects(std::uint32_t partition);

// The deliver subject of a group's partition consumer (its holder subscribes to it), and all of them.
std::string deliver_subject(std::string_view group, std::uint32_t partition);
std::string all_deliver_subjects();

// NATS's partition(): FNV-1a (32 bit) of the post id, modulo the count.
std::uint32_t partition_of(std::string_view post, std::uint32_t count);

// The agent's MQTT topic (postwatch/v1/<region>/<post>/<agent>/events) of a partition
// subject; false when `subject` is not one.
bool events_topic(std::string_view subject, std::string& topic);

}  // namespace postwatch::partitions
