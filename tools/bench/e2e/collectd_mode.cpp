// postwatch-bench-e2e collectd (see collectd_mode.hpp).
#include "e2e/collectd_mode.hpp"

#include "e2e/common.hpp"
#include "e2e/report.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"
#include "support/test_support.hpp"

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

namespace postwatch::bench::e2e {

// ================================================================ collectd comparison

// One line to a collectd unixsock and its one-line answer.
class UnixSock {
 public:
  explicit UnixSock(const fs::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot connect to " + path.string() + ": " + std::strerror(errno));
  }
  ~UnixSock() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string command(const std::string& line) {
    std::string out = line + "\n";
    if (::write(fd_, out.data(), out.size()) != static_cast<ssize_t>(out.size())) return "write failed";
    std::string reply;
    char ch;
    while (::read(fd_, &ch, 1) == 1 && ch != '\n') reply += ch;
    return reply;
  }

 private:
  int fd_ = -1;
};

struct ProcessFigures {
  double idle_rss = 0, idle_cpu = 0, busy_rss = 0, busy_hwm = 0, busy_cpu = 0;
  std::uint64_t messages = 0, delivered_events = 0;
  bool ok = false;
  std::string error;
};

class TopicCounter {
 public:
  TopicCounter(const std::string& uri, const std::string& filter) : client_(uri, "pw-bench-counter") {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      messages_ += 1;
      if (m->get_topic().ends_with("/events")) {
        BatchView v;
        auto p = m->get_payload_ref();
        if (decode_batch({reinterpret_cast<const std::uint8_t*>(p.data()), p.size()}, v) == DecodeError::None)
          events_ += v.events.size();
      } else {
        events_ += 1;
      }
    });
    client_.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
    client_.subscribe(filter, 1)->wait();
  }
  ~TopicCounter() {
    try {
      client_.disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  void reset() { messages_ = 0, events_ = 0; }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t events() const { return events_; }

 private:
  mqtt::async_client client_;
  std::atomic<std::uint64_t> messages_{0}, events_{0};
};

constexpr auto kIdle = 3s;
constexpr auto kFeed = 5s;

// Idle for 3 s, then `feed(i)` at `rate` per second for 5 s: RSS and CPU of `pid`.
ProcessFigures measure_process(const std::string& pid, int rate, TopicCounter& counter,
                               const std::function<bool(std::uint64_t)>& feed, const std::function<bool()>& alive) {
  ProcessFigures f;
  sleep_checked(300ms);
  double cpu0 = cpu_of(pid);
  auto t0 = Clock::now();
  sleep_checked(std::chrono::duration_cast<std::chrono::milliseconds>(kIdle));
  f.idle_cpu = 100 * (cpu_of(pid) - cpu0) / seconds_since(t0);
  f.idle_rss = static_cast<double>(status_kb(pid, "VmRSS"));
  if (!alive()) {
    f.error = "exited early";
    return f;
  }
  counter.reset();
  cpu0 = cpu_of(pid);
  t0 = Clock::now();
  const auto n = static_cast<std::uint64_t>(rate) * static_cast<std::uint64_t>(kFeed.count());
  for (std::uint64_t i = 0; i < n; ++i) {
    check_stop();
    std::this_thread::sleep_until(t0 + std::chrono::microseconds(1'000'000 / rate) * i);
    if (!feed(i)) {
      f.error = "feeding failed at event " + std::to_string(i);
      return f;
    }
  }
  std::this_thread::sleep_until(t0 + kFeed);
  f.busy_cpu = 100 * (cpu_of(pid) - cpu0) / seconds_since(t0);
  f.busy_rss = static_cast<double>(status_kb(pid, "VmRSS"));
  f.busy_hwm = static_cast<double>(status_kb(pid, "VmHWM"));
  test::wait_until([&] { return counter.events() >= n; }, 5s);
  f.messages = counter.messages();
  f.delivered_events = counter.events();
  f.ok = true;
  return f;
}

int collectd_main(int argc, char** argv) {
  int rate = 100;
  std::string json_file;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rate" && i + 1 < argc)
      rate = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc)
      json_file = argv[++i];
    else
      throw std::invalid_argument("collectd: unknown argument '" + a + "'");
  }
  Report report;
  report.config("rate", rate);
  test::TempDir work;
  test::MosquittoBroker broker("", false);
  auto cat = IndicatorCatalogue::load(POSTWATCH_BENCH_CATALOGUE);
  auto put = [&](const ProcessFigures& f, const std::string& key, const std::string& title) {
    report.section(key, title);
    if (!f.ok) {
      report.text("error", "skipped", f.error);
      return;
    }
    report.add("idle_vm_rss_kib", "VmRSS idle (connected)", f.idle_rss, "KiB");
    report.add("idle_cpu_percent", "CPU idle", f.idle_cpu, "% of one core", 2);
    report.add("busy_vm_rss_kib", "VmRSS after 5 s at " + std::to_string(rate) + " events/s", f.busy_rss, "KiB");
    report.add("busy_vm_hwm_kib", "VmHWM (peak)", f.busy_hwm, "KiB");
    report.add("busy_cpu_percent", "CPU at " + std::to_string(rate) + " events/s", f.busy_cpu, "% of one core", 2);
    report.add("messages_per_s", "MQTT messages/s", static_cast<double>(f.messages) / 5.0, "msg/s", 1);
    report.add("delivered", "events delivered (of " + std::to_string(rate * 5) + ")",
               static_cast<double>(f.delivered_events), "");
  };

  // collectd: unixsock PUTVAL in, mqtt plugin out (QoS 1), one value list per message.
  ProcessFigures cd;
  const std::string collectd = "/usr/sbin/collectd";
  if (!fs::exists(collectd)) {
    cd.error = "collectd not installed (apt-get install collectd-core)";
  } else {
    const auto dir = work.path() / "collectd";
    fs::create_directories(dir);
    std::ofstream(dir / "collectd.conf") << "Hostname \"bench\"\nFQDNLookup false\nInterval 10\n"
                                         << "BaseDir \"" << dir.string() << "\"\nPIDFile \"" << (dir / "pid").string()
                                         << "\"\nPluginDir \"/usr/lib/collectd\"\n"
                                         << "TypesDB \"/usr/share/collectd/types.db\"\n"
                                         << "LoadPlugin logfile\n<Plugin logfile>\n  LogLevel warning\n  File STDERR\n"
                                         << "</Plugin>\nLoadPlugin unixsock\n<Plugin unixsock>\n  SocketFile \""
                                         << (dir / "sock").string() << "\"\n</Plugin>\nLoadPlugin mqtt\n"
                                         << "<Plugin mqtt>\n  <Publish \"bench\">\n    Host \"127.0.0.1\"\n    Port "
                                         << broker.port()
                                         << "\n    ClientId \"collectd-bench\"\n    QoS 1\n    Prefix \"collectd\"\n"
                                         << "    Retain false\n  </Publish>\n</Plugin>\n";
    TopicCounter counter(broker.uri(), "collectd/#");
    test::ChildProcess proc({collectd, "-f", "-C", (dir / "collectd.conf").string()}, dir / "collectd.log");
    if (!test::wait_until([&] { return fs::exists(dir / "sock") || !proc.running(); }, 10s) || !proc.running()) {
      cd.error = "collectd did not start: " + proc.log();
    } else {
      UnixSock sock(dir / "sock");
      const auto& inds = cat.indicators();
      cd = measure_process(
          std::to_string(proc.pid()), rate, counter,
          [&](std::uint64_t i) {
            const auto& ind = inds[i % (inds.size() - 1)];  // numeric ones (the text one is last)
            auto reply = sock.command("PUTVAL bench/postwatch/gauge-" + ind.id + " N:" + std::to_string(i % 5));
            return reply.rfind("0 ", 0) == 0;
          },
          [&] { return proc.running(); });
      if (!cd.ok) cd.error += "; log: " + proc.log();
    }
    proc.signal(SIGTERM);
    if (proc.wait(5s) == -1) proc.signal(SIGKILL);
  }
  put(cd, "collectd", "collectd " + std::string("(mqtt plugin, QoS 1, values via unixsock PUTVAL)"));

  // postwatch-agent run, the same rate as JSON lines on stdin.
  ProcessFigures pa;
  const std::string bin = POSTWATCH_BENCH_AGENT_BINARY;
  if (!fs::exists(bin)) {
    pa.error = bin + " not found";
  } else {
    const auto cfg = work.path() / "agent.json";
    std::ofstream(cfg) << json{{"broker_uri", broker.uri()},
                               {"allow_plaintext", true},
                               {"agent_id", "bench-agent"},
                               {"post_id", "bamako"},
                               {"catalogue_file", POSTWATCH_BENCH_CATALOGUE},
                               // collectd has no aggregator either: release on PUBACK as it does
                               {"delivery", {{"confirm", "broker"}}},
                               {"spool", {{"dir", (work.path() / "spool").string()}}}}
                              .dump(2);
    TopicCounter counter(broker.uri(), std::string(topics::events_filter));
    test::ChildProcess child({bin, "run", "--config", cfg.string()}, work.path() / "agent.log", true);
    pa = measure_process(
        std::to_string(child.pid()), rate, counter,
        [&](std::uint64_t i) {
          return child.write_stdin(json{{"indicator", "terrorism_threat_level"}, {"value", 1 + i % 5}}.dump() + "\n");
        },
        [&] { return child.running(); });
    if (!pa.ok) pa.error += "; log: " + child.log();
    child.close_stdin();
    child.signal(SIGTERM);
    if (child.wait(10s) == -1) child.signal(SIGKILL);
  }
  put(pa, "postwatch_agent", "postwatch-agent run (default batching, spool fsync interval), same feed");

  std::cout << "postwatch-bench-e2e collectd: " << rate << " events/s for " << kFeed.count() << " s, broker "
            << broker.uri() << "\n";
  report.print(std::cout);
  if (!json_file.empty()) std::ofstream(json_file) << report.json().dump(2) << "\n";
  return 0;
}

}  // namespace postwatch::bench::e2e
