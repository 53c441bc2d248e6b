// The publisher child (see publisher.hpp).
#include "e2e/publisher.hpp"

#include "bench_events.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"

#include <mqtt/async_client.h>

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <iostream>
#include <numeric>
#include <optional>
#include <thread>
#include <vector>

namespace postwatch::bench::e2e {

// Runs in the child: C connections, each with a window of W unacknowledged QoS 1
// messages. Reads "run <json>" lines on stdin, answers in the file the spec names.
int publisher_main(int argc, char** argv) {
  std::string broker, dir;
  std::size_t conns = 4, inflight = 8;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--broker") broker = argv[i + 1];
    if (a == "--dir") dir = argv[i + 1];
    if (a == "--connections") conns = std::stoul(argv[i + 1]);
    if (a == "--inflight") inflight = std::stoul(argv[i + 1]);
  }
  auto cat = IndicatorCatalogue::load(POSTWATCH_BENCH_CATALOGUE);
  bench::EventMaker maker(cat);
  std::vector<std::unique_ptr<mqtt::async_client>> clients;
  std::vector<mqtt::token_ptr> connecting;
  for (std::size_t c = 0; c < conns; ++c) {
    clients.push_back(std::make_unique<mqtt::async_client>(
        broker, "pw-bench-pub-" + std::to_string(::getpid()) + "-" + std::to_string(c)));
    auto opts = mqtt::connect_options_builder()
                    .clean_session(true)
                    .keep_alive_interval(20s)
                    .max_inflight(static_cast<int>(inflight * 2))  // as the agent sets it
                    .finalize();
    connecting.push_back(clients.back()->connect(opts));
  }
  for (auto& t : connecting) t->wait();
  std::ofstream(fs::path(dir) / "ready") << "ready\n";

  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "quit") break;
    if (line.rfind("run ", 0) != 0) continue;
    const json spec = json::parse(line.substr(4));
    const std::size_t batch = spec.at("batch"), agents = spec.at("agents"), messages = spec.at("messages");
    const double rate = spec.value("rate", 0.0);  // events/s; 0 = as fast as the window allows
    const std::uint64_t seq_start = spec.value("seq_start", 1ULL);
    const std::string tag = spec.at("tag");
    const std::size_t use = std::clamp<std::size_t>(spec.value("connections", conns), 1, conns);
    std::vector<bench::BenchAgent> ag;
    for (std::size_t a = 0; a < agents; ++a) ag.push_back(bench::bench_agent(cat, tag, a));
    // Enrolled agents (the "signed" phase): each batch signed with its agent's key.
    std::vector<std::optional<SigningKey>> keys(agents);
    if (spec.value("signed", false))
      for (std::size_t a = 0; a < agents; ++a) keys[a] = bench::bench_key(ag[a].id);
    auto signer = [&](std::size_t j) { return keys[j % agents] ? &*keys[j % agents] : nullptr; };
    // Message j: agent j % agents, that agent's (j / agents)-th batch; an agent's batches
    // all go over one connection, in order.
    std::vector<std::vector<std::size_t>> per_conn(conns);
    for (std::size_t j = 0; j < messages; ++j) per_conn[(j % agents) % use].push_back(j);
    auto first_seq = [&](std::size_t j) { return seq_start + (j / agents) * batch; };
    std::vector<std::vector<std::uint8_t>> payloads;
    auto e0 = Clock::now();
    if (rate <= 0) {
      payloads.resize(messages);
      const auto now = now_utc_ms();
      for (std::size_t j = 0; j < messages; ++j)
        payloads[j] =
            bench::encode_bench_batch(maker, ag[j % agents], batch, first_seq(j), j * batch, now, now, signer(j));
    }
    const double encode_s = seconds_since(e0);
    std::size_t payload_bytes = 0;
    for (const auto& p : payloads) payload_bytes += p.size();

    const auto t0 = Clock::now() + 20ms;  // every connection starts together
    const std::int64_t t0_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
    const std::int64_t t0_ms = now_utc_ms() + 20;
    std::vector<std::int64_t> end_ns(conns, 0), max_lag_us(conns, 0), errors(conns, 0), bytes(conns, 0);
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < conns; ++c) {
      threads.emplace_back([&, c] {
        auto& client = *clients[c];
        std::deque<mqtt::delivery_token_ptr> window;
        std::this_thread::sleep_until(t0);
        try {
          for (std::size_t j : per_conn[c]) {
            const bench::BenchAgent& a = ag[j % agents];
            std::vector<std::uint8_t> fresh;
            const std::vector<std::uint8_t>* p = nullptr;
            if (rate > 0) {
              // Burst creation: a batch's events are created together, observed_at = now.
              const auto due = t0 + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                        1e9 * static_cast<double>(j) * static_cast<double>(batch) / rate));
              std::this_thread::sleep_until(due);
              max_lag_us[c] = std::max<std::int64_t>(
                  max_lag_us[c], std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - due).count());
              const auto now = now_utc_ms();
              fresh = bench::encode_bench_batch(maker, a, batch, first_seq(j), j * batch, now, now, signer(j));
              p = &fresh;
            } else {
              p = &payloads[j];
            }
            if (window.size() >= inflight) {
              window.front()->wait();
              window.pop_front();
            }
            window.push_back(client.publish(a.topic, p->data(), p->size(), 1, false));
            bytes[c] += static_cast<std::int64_t>(p->size());
          }
          for (auto& t : window) t->wait();
        } catch (const std::exception& e) {
          errors[c] += 1;
          std::cerr << "publisher connection " << c << ": " << e.what() << "\n";
        }
        end_ns[c] = steady_ns();
      });
    }
    for (auto& t : threads) t.join();
    json result{{"messages", messages},
                {"events", messages * batch},
                {"start_ns", t0_ns},
                {"start_ms", t0_ms},
                {"end_ns", *std::max_element(end_ns.begin(), end_ns.end())},
                {"max_lag_ms", static_cast<double>(*std::max_element(max_lag_us.begin(), max_lag_us.end())) / 1000},
                {"errors", std::accumulate(errors.begin(), errors.end(), std::int64_t{0})},
                {"payload_bytes", std::accumulate(bytes.begin(), bytes.end(), std::int64_t{0})},
                {"encode_s", encode_s}};
    const fs::path out = spec.at("out").get<std::string>();
    std::ofstream(out.string() + ".tmp") << result.dump() << "\n";
    fs::rename(out.string() + ".tmp", out);
  }
  for (auto& c : clients) {
    try {
      c->disconnect(500)->wait_for(1s);
    } catch (const mqtt::exception&) {
    }
  }
  return 0;
}

}  // namespace postwatch::bench::e2e
