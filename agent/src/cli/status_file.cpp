// status.json: what the running agent writes (status_json, write_status) and what
// `postwatch-agent status` makes of it.
#include "status_file.hpp"

#include "agent_commands.hpp"

#include "postwatch/clock.hpp"
#include "postwatch/fleet_report_json.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace postwatch::agent::cli {
namespace {

std::filesystem::path status_file(const AgentConfig& c) { return c.spool.dir / "status.json"; }

nlohmann::json fleet_status(const FleetBundles* fleet) {
  return fleet ? fleet_report_json(fleet->report()) : nlohmann::json();
}

std::string join_ids(const nlohmann::json& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + (id.is_string() ? id.get<std::string>() : id.dump());
  return out;
}

// The status file's fleet object as one line of `status`.
std::string describe_fleet_status(const nlohmann::json& f) {
  if (!f.is_object()) return "no fleet bundles (fleet.key_file not set)";
  auto version = [](std::uint64_t v) { return v ? "bundle v" + std::to_string(v) : std::string("the board's own"); };
  std::string out = "config from " + version(f.value("config_bundle", std::uint64_t{0})) + ", catalogue from " +
                    version(f.value("catalogue_bundle", std::uint64_t{0})) + " (catalogue_version " +
                    std::to_string(f.value("catalogue_version", 0)) + ")";
  const auto last = f.value("last_outcome", "none");
  if (last != "none") {
    out += "; last: v" + std::to_string(f.value("last_version", std::uint64_t{0})) + " " + last;
    if (const auto why = f.value("last_reason", ""); !why.empty() && last != "applied") out += " (" + why + ")";
  }
  return out;
}

}  // namespace

const char* delivery_confirmer(const AgentConfig& c) { return c.aggregator_confirms() ? "aggregator" : "broker"; }

void EarlierCounts::add(const Agent& agent) {
  const auto s = agent.stats();
  accepted += s.accepted;
  sent += s.sent;
  confirmed += s.confirmed;
  rejected += s.rejected;
  dropped += agent.metrics().events_dropped;
  resend_requests += s.resend_requests;
  stall_resends += s.stall_resends;
  confirm_rejected += s.confirm_rejected;
  reconnects += s.reconnects;
}

nlohmann::json status_json(const Agent& agent, const FleetBundles* fleet, const EarlierCounts& earlier) {
  auto s = agent.stats();
  const auto& e = earlier;
  auto m = agent.metrics();
  nlohmann::json j{{"agent_id", agent.config().agent_id},
                   {"post_id", agent.config().post_id},
                   {"broker_uri", agent.config().broker_uri},
                   {"connected", s.connected},
                   {"pid", ::getpid()},
                   {"updated_at_ms", now_utc_ms()},
                   {"uptime_s", m.uptime_s},
                   {"spool_events", m.spool_events},
                   {"spool_bytes", m.spool_bytes},
                   {"oldest_unsent_age_ms", m.oldest_unsent_age_ms},
                   {"events_accepted", e.accepted + s.accepted},
                   {"events_sent", e.sent + s.sent},
                   {"events_confirmed", e.confirmed + s.confirmed},
                   {"events_rejected", e.rejected + s.rejected},
                   {"events_dropped", e.dropped + m.events_dropped},
                   {"delivery_confirm", delivery_confirmer(agent.config())},
                   {"sent_through_seq", s.sent_through_seq},
                   {"confirmed_through_seq", s.confirmed_through_seq},
                   {"resend_requests", e.resend_requests + s.resend_requests},
                   {"stall_resends", e.stall_resends + s.stall_resends},
                   {"confirm_rejected", e.confirm_rejected + s.confirm_rejected},
                   {"aggregator_key_ids", agent.aggregator_key_ids()},
                   {"reconnects", e.reconnects + s.reconnects},
                   {"clock_sync", std::string(to_string(s.clock_sync))},
                   {"clock_jumps", s.clock_jumps},
                   {"last_clock_jump_ms", s.last_clock_jump_ms},
                   {"rss_bytes", m.rss_bytes},
                   {"last_error", s.last_error},
                   {"fleet", fleet_status(fleet)}};
  return j;
}

void write_status(const Agent& agent, const FleetBundles* fleet, const EarlierCounts& earlier) {
  const auto j = status_json(agent, fleet, earlier);
  auto path = status_file(agent.config());
  auto tmp = path;
  tmp += ".tmp";
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    out.close();  // a full disk shows only once the buffer is written: check after closing
    if (!out) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, path, ec);
}

int cmd_status(const Args& args) {
  auto config = AgentConfig::load(args.get("config"));
  std::ifstream in(status_file(config));
  if (!in) {
    std::cout << "agent " << config.agent_id << ": not running (no " << status_file(config).string() << ")\n";
    return 4;
  }
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) {
    std::cout << "agent " << config.agent_id << ": status file unreadable\n";
    return 4;
  }
  auto age_s = (now_utc_ms() - j.value("updated_at_ms", std::int64_t{0})) / 1000;
  bool alive = age_s <= 5 && ::kill(j.value("pid", 0), 0) == 0;
  std::cout << "agent      " << j.value("agent_id", "") << " (post " << j.value("post_id", "") << ")\n"
            << "state      " << (alive ? "running" : "NOT RUNNING (status is " + std::to_string(age_s) + " s old)")
            << ", pid " << j.value("pid", 0) << ", up " << j.value("uptime_s", 0) << " s\n"
            << "broker     " << j.value("broker_uri", "") << " — "
            << (j.value("connected", false) ? "connected" : "DISCONNECTED") << ", " << j.value("reconnects", 0)
            << " reconnect(s)\n"
            << "spool      " << j.value("spool_events", 0) << " unconfirmed event(s), " << j.value("spool_bytes", 0)
            << " bytes, oldest " << j.value("oldest_unsent_age_ms", 0) / 1000 << " s\n"
            << "events     " << j.value("events_accepted", 0) << " accepted, " << j.value("events_sent", 0) << " sent, "
            << j.value("events_confirmed", 0) << " confirmed, " << j.value("events_rejected", 0) << " rejected, "
            << j.value("events_dropped", 0) << " dropped\n"
            << "delivery   confirmed by the " << j.value("delivery_confirm", "broker") << "; sent through seq "
            << j.value("sent_through_seq", 0) << ", confirmed through seq " << j.value("confirmed_through_seq", 0)
            << ", " << j.value("resend_requests", 0) << " resend request(s), " << j.value("stall_resends", 0)
            << " resend(s) after no confirmation, " << j.value("confirm_rejected", 0) << " confirmation(s) ignored\n"
            << "clock      " << j.value("clock_sync", "unknown") << ", " << j.value("clock_jumps", 0)
            << " jump(s) while running"
            << (j.value("clock_jumps", 0) > 0
                    ? ", the last " + std::to_string(j.value("last_clock_jump_ms", std::int64_t{0}) / 1000) + " s"
                    : std::string())
            << "\n"
            << "trust      "
            << (j.value("aggregator_key_ids", nlohmann::json::array()).empty()
                    ? std::string("not enrolled: unsigned, confirmations unchecked")
                    : "obeys confirmations signed by aggregator key(s) " + join_ids(j["aggregator_key_ids"]))
            << "\n"
            << "fleet      " << describe_fleet_status(j.value("fleet", nlohmann::json())) << "\n"
            << "memory     " << j.value("rss_bytes", 0) / 1024 << " KiB resident\n"
            << "last error " << (j.value("last_error", "").empty() ? "(none)" : j.value("last_error", "")) << "\n";
  return alive ? 0 : 4;
}

}  // namespace postwatch::agent::cli
