#include "postwatch/event_partitions.hpp"

#include "postwatch/topics.hpp"

namespace postwatch::partitions {

namespace {
constexpr std::string_view subject_prefix = "postwatch-events.";
constexpr std::string_view deliver_prefix = "postwatch-deliver.";
}  // namespace

std::string deliver_subject(std::string_view group, std::uint32_t partition) {
  return std::string(deliver_prefix) + std::string(group) + ".p" + std::to_string(partition);
}

std::string all_deliver_subjects() { return std::string(deliver_prefix) + ">"; }

std::string mapping_destination(std::uint32_t count) {
  return std::string(subject_prefix) + "{{partition(" + std::to_string(count) +
         ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}";
}

std::string all_subjects() { return std::string(subject_prefix) + ">"; }

std::string partition_subjects(std::uint32_t partition) {
  return std::string(subject_prefix) + std::to_string(partition) + ".>";
}

std::uint32_t partition_of(std::string_view post, std::uint32_t count) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : post) {
    h ^= c;
    h *= 16777619u;
  }
  return count == 0 ? 0 : h % count;
}

bool events_topic(std::string_view subject, std::string& topic) {
  if (!subject.starts_with(subject_prefix)) return false;
  subject.remove_prefix(subject_prefix.size());
  std::string_view parts[4];
  for (int i = 0; i < 4; ++i) {
    auto dot = subject.find('.');
    if ((i < 3) == (dot == std::string_view::npos)) return false;
    parts[i] = subject.substr(0, dot);
    if (parts[i].empty()) return false;
    subject = i < 3 ? subject.substr(dot + 1) : std::string_view{};
  }
  topic = topics::agent_topic(parts[1], parts[2], parts[3], topics::Channel::Events);
  return true;
}

}  // namespace postwatch::partitions
