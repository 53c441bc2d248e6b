// Phase 2, takeover: 3 clustered instances under a steady load; SIGKILL one at a time, time until
// its partitions are held and applying again on the survivors, restart it, time its rejoin.
#include "cluster_bench_aggregators.hpp"
#include "cluster_bench_phases.hpp"
#include "cluster_bench_progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

namespace postwatch::bench {

using namespace std::chrono_literals;

namespace {

// Nearest rank: with fewer than 100 samples p99 is the largest.
Spread spread(std::vector<double> v) {
  Spread s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    auto r = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(r, 1, v.size()) - 1];
  };
  s.p50 = rank(0.50), s.p99 = rank(0.99), s.max = v.back();
  return s;
}

// Every agent's events received, summed, as instance i shows them (its global view).
std::optional<std::uint64_t> events_received(AggregatorGroup& aggs, std::size_t i) {
  auto a = aggs.get(i, "/api/v1/agents");
  if (!a.is_object()) return std::nullopt;
  std::uint64_t n = 0;
  for (const auto& x : a["agents"])
    if (x.contains("events") && x["events"].is_object()) n += x["events"].value("received", std::uint64_t{0});
  return n;
}

KillSample kill_and_rejoin(AggregatorGroup& aggs, std::size_t victim, const std::vector<BenchAgent>& agents,
                           const BrokerSet& brokers, const Options& opt) {
  KillSample s;
  s.victim = aggs.at(victim).id;
  s.load_average = load_average().substr(0, load_average().find(' '));
  std::vector<std::size_t> survivors;
  for (std::size_t i = 0; i < aggs.size(); ++i)
    if (i != victim) survivors.push_back(i);
  // The processes alive throughout (the victim's new process counts whole: it starts in the cycle).
  const std::string self = std::to_string(::getpid());
  auto ours_cpu = [&] {
    double sum = cpu_seconds(self);
    for (const auto& b : brokers.procs) sum += cpu_seconds(b.pid);
    for (auto i : survivors) sum += cpu_seconds(aggs.at(i).pid());
    return sum;
  };
  const double machine0 = machine_busy_seconds(), ours0 = ours_cpu();
  const auto cycle0 = Clock::now();

  // What the victim holds, and per partition a probe agent and the highest seq the victim applied.
  auto c = aggs.get(victim, "/api/v1/cluster");
  if (!c.is_object()) throw std::runtime_error(s.victim + " did not answer /api/v1/cluster");
  for (const auto& p : c["partitions"]["held"]) s.partitions.push_back(p.get<std::uint32_t>());
  if (s.partitions.empty()) throw std::runtime_error(s.victim + " holds no partition:\n" + c.dump());
  // Every agent of ours on a partition is a probe: the partition applies again once the new
  // holder has a seq from one of them beyond both what the victim had and what the new holder
  // had when it took the partition (the victim's last snapshot, merged, can carry seqs the
  // victim applied after we read it; only an event applied after the takeover goes beyond both).
  std::map<std::uint32_t, std::vector<std::string>> probe;  // partition -> "post/agent"
  for (const auto& a : agents)
    if (auto p = partitions::partition_of(a.post, opt.partitions);
        std::find(s.partitions.begin(), s.partitions.end(), p) != s.partitions.end())
      probe[p].push_back(a.post + "/" + a.id);
  std::uint64_t takeovers0 = 0;
  for (auto i : survivors) {
    auto sc = aggs.get(i, "/api/v1/cluster");
    if (sc.is_object()) takeovers0 += sc["counters"].value("takeovers", std::uint64_t{0});
  }
  const auto victim_seqs = highest_seqs(aggs, victim);
  std::map<std::uint32_t, std::map<std::string, std::uint64_t>> baseline;  // partition -> probe -> seq

  const auto killed = Clock::now();
  aggs.kill(victim);
  std::map<std::uint32_t, std::size_t> holder;     // partition -> survivor holding it
  std::map<std::uint32_t, double> held, applying;  // partition -> seconds after the kill
  while (applying.size() < s.partitions.size()) {
    check_stop();
    if (Clock::now() - killed > 60s)
      throw std::runtime_error("takeover of " + s.victim + "'s partitions not done within 60 s:\n" +
                               aggs.diagnostics());
    for (auto i : survivors) {
      aggs.check_running(i);
      auto sc = aggs.get(i, "/api/v1/cluster");
      if (!sc.is_object()) continue;
      for (const auto& x : sc["partitions"]["held"]) {
        auto p = x.get<std::uint32_t>();
        if (std::find(s.partitions.begin(), s.partitions.end(), p) != s.partitions.end() && !held.count(p)) {
          held[p] = seconds_between(killed, Clock::now());
          holder[p] = i;
        }
      }
    }
    std::map<std::size_t, std::map<std::string, std::uint64_t>> seqs;  // this poll's, per holder asked
    for (auto [p, i] : holder) {
      if (applying.count(p)) continue;
      if (!probe.count(p)) {
        applying[p] = held[p];  // no agent of ours on it (not with the catalogue's posts)
        continue;
      }
      if (!seqs.count(i)) seqs[i] = highest_seqs(aggs, i);
      const auto& now_seqs = seqs[i];
      auto seq_of = [](const std::map<std::string, std::uint64_t>& m, const std::string& id) {
        auto it = m.find(id);
        return it == m.end() ? std::uint64_t{0} : it->second;
      };
      if (!baseline.count(p)) {  // the first poll after the takeover: what the new holder starts from
        if (now_seqs.empty()) continue;
        for (const auto& id : probe[p]) baseline[p][id] = std::max(seq_of(victim_seqs, id), seq_of(now_seqs, id));
        continue;
      }
      for (const auto& id : probe[p])
        if (seq_of(now_seqs, id) > baseline[p][id]) {
          applying[p] = seconds_between(killed, Clock::now());
          break;
        }
    }
    std::this_thread::sleep_for(20ms);
  }
  for (auto [p, t] : held) s.held_s = std::max(s.held_s, t);
  for (auto [p, t] : applying) s.applying_s = std::max(s.applying_s, t);
  for (auto i : survivors) {
    auto sc = aggs.get(i, "/api/v1/cluster");
    if (sc.is_object()) s.survivors_takeovers += sc["counters"].value("takeovers", std::uint64_t{0});
  }
  s.survivors_takeovers -= std::min(s.survivors_takeovers, takeovers0);

  // Restart it on the same data dir and instance id, as an operator (or systemd) would.
  std::error_code ec;
  const auto log_from = fs::file_size(aggs.at(victim).log, ec);
  const auto restarted = Clock::now();
  PartitionStalls stalls(agents, opt.partitions, restarted);
  stalls.poll(aggs);
  aggs.start(victim);
  bool ready = false;
  while (true) {
    check_stop();
    if (Clock::now() - restarted > 90s)
      throw std::runtime_error(s.victim + " did not rejoin within 90 s (" + process_state(aggs.at(victim).pid()) +
                               "):\n" + aggs.diagnostics());
    if (!ready && test::http_get(aggs.at(victim).http_port, "/readyz").status == 200) {
      ready = true;
      s.rejoin_ready_s = seconds_between(restarted, Clock::now());
    }
    if (ready && aggs.settled(aggs.all())) break;
    stalls.poll(aggs);
    std::this_thread::sleep_for(20ms);
  }
  s.rejoin_s = seconds_between(restarted, Clock::now());
  {
    stalls.poll(aggs);
    std::set<std::uint32_t> moved;
    if (auto vc = aggs.get(victim, "/api/v1/cluster"); vc.is_object())
      for (const auto& p : vc["partitions"]["held"]) moved.insert(p.get<std::uint32_t>());
    s.rejoin_kept_stall_s = stalls.longest(moved, false);
    s.rejoin_moved_stall_s = stalls.longest(moved, true);
  }
  {
    // "store: replayed 877000 event(s) in 4283 ms"
    std::ifstream in(aggs.at(victim).log);
    in.seekg(static_cast<std::streamoff>(ec ? 0 : log_from));
    for (std::string line; std::getline(in, line);)
      if (auto at = line.find("store: replayed "); at != std::string::npos) {
        unsigned long long n = 0, ms = 0;
        if (std::sscanf(line.c_str() + at, "store: replayed %llu event(s) in %llu ms", &n, &ms) == 2)
          s.replayed_events = n, s.replay_s = static_cast<double>(ms) / 1000;
      }
  }
  const double cycle = seconds_between(cycle0, Clock::now());
  const double ours = ours_cpu() - ours0 + cpu_seconds(aggs.at(victim).pid());
  s.ours_cpu_percent = 100 * ours / cycle;
  s.others_cpu_percent = std::max(0.0, 100 * (machine_busy_seconds() - machine0 - ours) / cycle);
  return s;
}

// Which agents' counts differ from what was published, as each instance sees them, and what
// the events stream still holds.
std::vector<std::string> explain_mismatch(AggregatorGroup& aggs, const std::vector<BenchAgent>& agents,
                                          const std::vector<std::uint64_t>& published, test::NatsCluster& nats,
                                          const Options& opt) {
  std::vector<std::string> out;
  out.push_back("events stream " + std::string(partitions::events_stream) + ": " +
                std::to_string(nats.stream_messages(std::string(partitions::events_stream))) + " message(s) left");
  std::vector<std::map<std::string, json>> views(aggs.size());
  for (std::size_t i = 0; i < aggs.size(); ++i) {
    auto a = aggs.get(i, "/api/v1/agents");
    std::uint64_t sum = 0;
    if (a.is_object())
      for (const auto& x : a["agents"])
        if (x.contains("events") && x["events"].is_object()) {
          views[i][x.value("id", "")] = x["events"];
          sum += x["events"].value("received", std::uint64_t{0});
        }
    auto c = aggs.get(i, "/api/v1/cluster");
    out.push_back(aggs.at(i).id + ": events received " + std::to_string(sum) + ", counters " +
                  (c.is_object() ? c["counters"].dump() : "?"));
  }
  std::size_t listed = 0, differ = 0;
  for (std::size_t a = 0; a < agents.size(); ++a) {
    const auto key = agents[a].post + "/" + agents[a].id;
    const std::uint64_t want = published[a] * opt.batch;
    std::string line = key + " (partition " + std::to_string(partitions::partition_of(agents[a].post, opt.partitions)) +
                       "): published " + std::to_string(want) + " events, seqs 1.." + std::to_string(want);
    bool bad = false;
    for (std::size_t i = 0; i < aggs.size(); ++i) {
      auto it = views[i].find(key);
      std::uint64_t got = it == views[i].end() ? 0 : it->second.value("received", std::uint64_t{0});
      bad = bad || got != want;
      line += "; " + aggs.at(i).id + ": " + (it == views[i].end() ? "-" : it->second.dump());
    }
    if (bad && ++differ && listed < 8) out.push_back(line), ++listed;
  }
  out.push_back(std::to_string(differ) + " agent(s) differ on at least one instance");
  return out;
}

}  // namespace

TakeoverFigures phase_takeover(const Options& opt, const fs::path& binary, const EventMaker& maker,
                               double steady_rate) {
  TakeoverFigures f;
  f.lease_ms = opt.lease_ms;
  f.steady_rate = steady_rate;
  std::cerr << "takeover: starting a 3-node NATS cluster and 3 aggregators (lease " << opt.lease_ms << " ms)...\n";
  test::NatsCluster nats(3, opt.partitions);
  const auto brokers = broker_set(nats);
  const std::string group = "bench" + std::to_string(::getpid()) + "-takeover";
  AggregatorGroup aggs(binary, brokers, group, 3, opt);
  aggs.wait_settled(90s);
  f.log_start = aggs.log_problems();
  aggs.mark_logs();
  const auto agents = make_agents(maker, group, opt);
  LoadPublisher publisher(brokers.mqtt, opt.connections, opt.window, "takeover");
  std::cerr << "takeover: steady load of " << fixed(steady_rate) << " messages/s (" << fixed(steady_rate * opt.batch)
            << " events/s)\n";
  const auto load_start = Clock::now();
  publisher.start_steady(maker, agents, opt.batch, steady_rate);
  try {
    pause_for(3s);  // every partition applying
    {
      // The baseline for the rejoin's stalls: the same measure over a few seconds of no change.
      const auto from = Clock::now();
      PartitionStalls stalls(agents, opt.partitions, from);
      while (Clock::now() - from < 4s) {
        check_stop();
        stalls.poll(aggs);
        std::this_thread::sleep_for(20ms);
      }
      f.steady_stall_s = stalls.longest({}, false);
    }
    for (std::size_t k = 0; k < opt.kills; ++k) {
      const std::size_t victim = k % aggs.size();
      std::cerr << "takeover: kill " << k + 1 << " of " << opt.kills << ": SIGKILL " << aggs.at(victim).id << "... ";
      auto s = kill_and_rejoin(aggs, victim, agents, brokers, opt);
      std::cerr << s.partitions.size() << " partition(s) held again after " << fixed(s.held_s, 2)
                << " s, applying after " << fixed(s.applying_s, 2) << " s; restarted, rejoined after "
                << fixed(s.rejoin_s, 2) << " s, of which " << fixed(s.replay_s, 1) << " s replaying "
                << s.replayed_events << " stored events (load average " << s.load_average << ", other processes "
                << fixed(s.others_cpu_percent) << "% CPU)\n";
      f.kills.push_back(std::move(s));
      pause_for(2s);  // snapshots and acknowledgements catch up before the next kill
    }
  } catch (...) {
    try {
      publisher.stop();
    } catch (...) {
    }
    throw;
  }
  auto pub = publisher.stop();
  f.steady_events_per_s = static_cast<double>(pub.messages * opt.batch) / seconds_between(load_start, pub.end);
  f.published_events = pub.messages * opt.batch;

  // Nothing lost, nothing counted twice: instance 1's global view counts every event once.
  std::cerr << "takeover: waiting for every published event to be applied...\n";
  auto last = Clock::now();
  while (true) {
    check_stop();
    if (auto n = events_received(aggs, 0)) {
      if (*n != f.applied_events) last = Clock::now();
      f.applied_events = *n;
    }
    if (f.applied_events >= f.published_events || Clock::now() - last > 30s) break;
    std::this_thread::sleep_for(200ms);
  }
  f.all_applied = f.applied_events == f.published_events;
  if (!f.all_applied) f.mismatch = explain_mismatch(aggs, agents, publisher.agent_messages(), nats, opt);
  std::vector<double> held, applying, ready, rejoin, after_replay, kept, moved;
  for (const auto& s : f.kills) {
    kept.push_back(s.rejoin_kept_stall_s), moved.push_back(s.rejoin_moved_stall_s);
    held.push_back(s.held_s), applying.push_back(s.applying_s);
    ready.push_back(s.rejoin_ready_s), rejoin.push_back(s.rejoin_s);
    after_replay.push_back(std::max(0.0, s.rejoin_s - s.replay_s));
  }
  f.held = spread(held), f.applying = spread(applying), f.rejoin_ready = spread(ready), f.rejoin = spread(rejoin);
  f.rejoin_after_replay = spread(after_replay);
  f.kept_stall = spread(kept), f.moved_stall = spread(moved);
  f.log_kills = aggs.log_problems();
  aggs.save_logs(opt, "takeover", &nats);
  std::cerr << "takeover: stopping\n";
  return f;
}

void print_takeover(const TakeoverFigures& f) {
  std::printf(
      "\n2. Takeover after SIGKILL: 3 instances on a 3-node NATS cluster, lease %lld ms (--lease-ms), steady load of "
      "%.0f messages/s = %.0f events/s; %zu kill(s), round robin, each victim restarted on its data dir before the "
      "next.\n",
      static_cast<long long>(f.lease_ms), f.steady_rate, f.steady_events_per_s, f.kills.size());
  std::printf("\n%-24s %4s %7s %7s %7s\n", "seconds", "n", "p50", "p99", "max");
  auto row = [](const char* what, const Spread& s) {
    std::printf("%-24s %4zu %7.2f %7.2f %7.2f\n", what, s.n, s.p50, s.p99, s.max);
  };
  row("takeover: held again", f.held);
  row("takeover: applying", f.applying);
  row("rejoin: /readyz", f.rejoin_ready);
  row("rejoin: holds its share", f.rejoin);
  row("  of which not replay", f.rejoin_after_replay);
  row("rejoin: kept, stall", f.kept_stall);
  row("rejoin: moved, stall", f.moved_stall);
  std::printf("%-24s %4s %7s %7s %7.2f\n", "steady, stall", "", "", "", f.steady_stall_s);
  std::printf(
      "\nheld again = from the SIGKILL until every partition the victim held is in a survivor's held set; applying =\n"
      "until, in each, the new holder has applied an event past what the victim had and what it took over with;\n"
      "rejoin = from the restart until it holds every partition it wins and each is held once; it starts with the\n"
      "replay of the instance's own store, which grows with the load over the phase (\"not replay\": the rest).\n"
      "stall = during the rejoin, the longest time a partition's applied seqs stood still (the sum of its agents'\n"
      "highest seqs, the largest any instance shows), over the partitions the survivors kept and those that moved;\n"
      "steady = the same over 4 s before the first kill, nothing changing (the measure's own floor).\n"
      "/api/v1/cluster and /api/v1/agents polled every 20 ms. p99 of fewer than 100 samples is the\n"
      "largest.\n");
  std::string per_kill;
  for (const auto& s : f.kills) per_kill += (per_kill.empty() ? "" : " ") + fixed(s.applying_s, 2);
  std::printf("per kill (applying, s): %s\n", per_kill.c_str());
  std::printf("after the kills: %llu of %llu published events counted once by instance 1's global view: %s\n",
              static_cast<unsigned long long>(f.applied_events), static_cast<unsigned long long>(f.published_events),
              f.all_applied ? "nothing lost or counted twice" : "MISMATCH");
  for (const auto& line : f.mismatch) std::printf("  %s\n", line.c_str());
  std::string others, replay;
  for (const auto& s : f.kills) {
    others += (others.empty() ? "" : " ") + fixed(s.ours_cpu_percent) + "/" + fixed(s.others_cpu_percent);
    replay += (replay.empty() ? "" : " ") + fixed(s.replay_s, 1) + "/" +
              fixed(static_cast<double>(s.replayed_events) / 1e6, 2);
  }
  std::printf("per kill, rejoin's store replay (s / million events): %s\n", replay.c_str());
  std::printf("per kill, CPU %% of ours / of every other process (a build, a test run): %s\n", others.c_str());
  print_log_problems("takeover, starting the cluster", f.log_start);
  print_log_problems("takeover, under load, kills and restarts", f.log_kills, 10);
}

}  // namespace postwatch::bench
