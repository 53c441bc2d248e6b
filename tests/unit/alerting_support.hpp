// What the alerting unit tests share: the catalogue, a notifications file with one webhook
// channel "duty" and its secret on disk, goal alarms as the aggregator would describe them, and
// a log that says nothing.
#pragma once

#include "alerting/alarm_notice.hpp"
#include "alerting/notification_config.hpp"
#include "postwatch/catalogue.hpp"
#include "support/test_support.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace postwatch::test {

inline std::shared_ptr<spdlog::logger> quiet_log() {
  return std::make_shared<spdlog::logger>("alerting-test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

inline const IndicatorCatalogue& catalogue() { return shipped_catalogue(); }

inline void write_file(const std::filesystem::path& p, const std::string& text, std::filesystem::perms mode) {
  std::ofstream(p) << text;
  std::filesystem::permissions(p, mode);
}
constexpr auto kOwnerOnly = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;

// A config with one webhook channel "duty" at `url`, its secret in dir/duty.secret, and `routes`.
inline std::string config_text(const std::string& url, const std::string& routes) {
  return R"({"channels":[{"name":"duty","kind":"webhook","url":")" + url +
         R"(","secret_file":"duty.secret","timeout_s":2}],"routes":)" + routes + "}";
}

struct ConfigDir {
  TempDir dir;
  ConfigDir() { write_file(dir.path() / "duty.secret", "s3cret-key\n", kOwnerOnly); }
  aggregator::NotificationConfig parse(const std::string& text) {
    return aggregator::NotificationConfig::parse(text, "notifications file n.json", dir.path(), catalogue());
  }
  std::string error(const std::string& text) {
    try {
      parse(text);
    } catch (const aggregator::NotificationConfigError& e) {
      return e.what();
    }
    return "";
  }
};

inline aggregator::AlarmNotice goal_alarm(std::uint64_t id, int goal, const std::string& level,
                                          const std::string& post = "bamako") {
  const Post* p = catalogue().find_post(post);
  aggregator::AlarmNotice a{id,     "goal",      level, goal,  catalogue().find_goal(goal)->pillar,
                            {post}, {p->region}, true,  false, {}};
  a.alarm = {{"id", id}, {"kind", "goal"}, {"goal", goal}, {"level", level}, {"state", "open"}};
  return a;
}

}  // namespace postwatch::test
