// The publishers: a child process (this binary in `publisher` mode) with C MQTT connections, each
// keeping W QoS 1 messages in flight, so that they do not share Paho's library threads with the
// subscriber or the aggregator; and the parent's handle on it, which sends it runs over stdin.
#pragma once

#include "e2e/common.hpp"
#include "support/test_support.hpp"

#include <csignal>
#include <fstream>
#include <stdexcept>
#include <string>

namespace postwatch::bench::e2e {

// The child's main: reads "run <json>" lines on stdin, answers in the file the spec names.
int publisher_main(int argc, char** argv);

// The child, seen from the parent.
class Publisher {
 public:
  Publisher(const std::string& broker_uri, const fs::path& dir, std::size_t conns, std::size_t inflight)
      : dir_(make_dir(dir)),
        child_({fs::read_symlink("/proc/self/exe").string(), "publisher", "--broker", broker_uri, "--dir", dir.string(),
                "--connections", std::to_string(conns), "--inflight", std::to_string(inflight)},
               dir / "publisher.log", true) {
    if (!test::wait_until([&] { return fs::exists(dir / "ready") || !child_.running() || g_stop; }, 30s) ||
        !child_.running())
      throw std::runtime_error("publisher did not connect: " + child_.log());
    check_stop();
  }
  ~Publisher() {
    child_.write_stdin("quit\n");
    child_.close_stdin();
    if (child_.wait(5s) == -1) child_.signal(SIGKILL);
  }
  json run(json spec, std::chrono::seconds timeout = 180s) {
    const fs::path out = dir_ / ("result-" + std::to_string(++n_) + ".json");
    spec["out"] = out.string();
    if (!child_.write_stdin("run " + spec.dump() + "\n")) throw std::runtime_error("publisher gone: " + child_.log());
    if (!test::wait_until([&] { return fs::exists(out) || !child_.running() || g_stop; }, timeout, 2ms))
      throw std::runtime_error("publisher timed out");
    check_stop();
    if (!child_.running() && !fs::exists(out)) throw std::runtime_error("publisher died: " + child_.log());
    std::ifstream in(out);
    return json::parse(in);
  }
  std::string pid() { return std::to_string(child_.pid()); }

 private:
  static fs::path make_dir(const fs::path& d) {
    fs::create_directories(d);
    return d;
  }
  fs::path dir_;
  test::ChildProcess child_;
  int n_ = 0;
};

}  // namespace postwatch::bench::e2e
