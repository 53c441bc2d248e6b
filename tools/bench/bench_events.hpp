// Realistic event batches for the benchmarks: every catalogue indicator in turn
// (text included), each with a value the catalogue accepts, from distinct agents
// spread over the catalogue's posts. Header-only; shared by postwatch-bench-ingest
// and postwatch-bench-e2e.
#pragma once

#include "postwatch/catalogue.hpp"
#include "postwatch/event.hpp"
#include "postwatch/signing.hpp"
#include "postwatch/topics.hpp"
#include "postwatch/wire_codec.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace postwatch::bench {

class EventMaker {
 public:
  explicit EventMaker(const IndicatorCatalogue& catalogue) : catalogue_(catalogue) {
    for (std::uint32_t i = 0; i < catalogue.indicators().size(); ++i) {
      const auto& ind = catalogue.indicators()[i];
      if (ind.reported_by != Reporter::Posts) continue;  // ministry figures: not what posts send
      indicators_.push_back(i);
      // Three values per indicator that the catalogue check accepts, so readings change.
      std::vector<double> values;
      switch (ind.kind) {
        case ValueKind::Level:
          for (double v = ind.min; v <= ind.max && values.size() < 3; v += 1) values.push_back(v);
          break;
        case ValueKind::Count: values = {1, 0, 2}; break;
        case ValueKind::Boolean: values = {0, 1, 0}; break;
        case ValueKind::Gauge:
        case ValueKind::Share:
          values = {ind.baseline, (ind.baseline + ind.amber) / 2, ind.amber};
          for (auto& v : values) v = std::clamp(v, ind.min, ind.max);
          break;
        case ValueKind::Text: values = {0}; break;
      }
      for (double v : values) {
        auto why = catalogue.check_value(ind, ind.kind, v, ind.kind == ValueKind::Text ? "road closed" : "");
        if (!why.empty()) throw std::logic_error("bench event generator: " + why);
      }
      values_.push_back(values);
    }
  }

  // The i-th event of a stream: the posts' indicator i % N, one of its values; seq and time given.
  IndicatorEvent make(std::uint64_t i, std::uint64_t seq, std::int64_t observed_at_ms) const {
    const auto n = indicators_.size();
    const auto& ind = catalogue_.indicators()[indicators_[i % n]];
    const auto& vals = values_[i % n];
    IndicatorEvent e;
    e.seq = seq;
    e.observed_at_ms = observed_at_ms;
    e.indicator = ind.id;
    e.kind = ind.kind;
    if (ind.kind == ValueKind::Text)
      e.text = "road closed";
    else
      e.number = vals[(i / n) % vals.size()];
    return e;
  }

  const IndicatorCatalogue& catalogue() const { return catalogue_; }
  // The indicators make() cycles through: make(k) is of indicators()[k % size], catalogue positions.
  const std::vector<std::uint32_t>& indicators() const { return indicators_; }

 private:
  const IndicatorCatalogue& catalogue_;
  std::vector<std::uint32_t> indicators_;  // the posts' indicators, catalogue positions
  std::vector<std::vector<double>> values_;
};

// Agent `a` of a run: id "<tag>-<a>", at post a % posts (catalogue order, the ministry left out).
struct BenchAgent {
  std::string id, post, topic;
};

inline BenchAgent bench_agent(const IndicatorCatalogue& catalogue, const std::string& tag, std::size_t a) {
  const std::vector<std::uint32_t> posts = catalogue.posts_of_kind(PostKind::Post);
  const auto& post = catalogue.posts()[posts[a % posts.size()]];
  BenchAgent b{tag + "-" + std::to_string(a), post.id, ""};
  b.topic = topics::agent_topic(post.region, post.id, b.id, topics::Channel::Events);
  return b;
}

// The signing key of a benchmark agent, the same in every process that asks (the publisher
// signs with it, the benchmark enrols its public half).
inline SigningKey bench_key(const std::string& agent_id) {
  static const std::vector<std::uint8_t> salt{'p', 'w', '-', 'b', 'e', 'n', 'c', 'h'};
  return SigningKey::from_seed(hmac_sha256(
      salt, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(agent_id.data()), agent_id.size())));
}

// One batch of `batch` events for an agent: seqs first_seq.., all observed at observed_at_ms;
// signed when `signer` is given.
inline std::vector<std::uint8_t> encode_bench_batch(const EventMaker& maker, const BenchAgent& agent, std::size_t batch,
                                                    std::uint64_t first_seq, std::uint64_t stream_index,
                                                    std::int64_t observed_at_ms, std::int64_t sent_at_ms,
                                                    const SigningKey* signer = nullptr) {
  EventBatch b;
  b.agent_id = agent.id;
  b.post_id = agent.post;
  b.sent_at_ms = sent_at_ms;
  b.events.reserve(batch);
  for (std::size_t k = 0; k < batch; ++k)
    b.events.push_back(maker.make(stream_index + k, first_seq + k, observed_at_ms));
  return encode_batch(b, signer);
}

}  // namespace postwatch::bench
