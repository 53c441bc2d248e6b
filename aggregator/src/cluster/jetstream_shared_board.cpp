// One board (docs/scale-out.md): what the instances share through the board bucket, the
// leader's image, acknowledgements, silences, topic-mismatch counts and the ministry's figures,
// as JetStreamCluster's Core takes them in and hands them out. On the io_context.
#include "cluster/jetstream_cluster.hpp"

#include "cluster/jetstream_internal.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace postwatch::aggregator {
using nlohmann::json;

void JetStreamCluster::Core::on_board_entry(const KvEntry& e) {
  if (e.deleted) return;
  if (e.key == "board") {
    board_latest = e.value;
    return;
  }
  if (e.key.starts_with("mismatch.")) return on_mismatch_entry(e);
  if (e.key.starts_with("silence.")) {
    silences_new.push_back(e.value);
    return;
  }
  if (e.key.starts_with("figure.")) {
    figures_new.push_back(e.value);
    return;
  }
  if (!e.key.starts_with("ack.")) return;
  json j = json::parse(e.value, nullptr, false);
  std::uint64_t id = 0;
  try {
    id = std::stoull(e.key.substr(4));
  } catch (const std::exception&) {
    return;
  }
  if (!j.is_object()) return;
  acks_new.push_back({id, j.value("by", ""), j.value("comment", ""), j.value("at_ms", std::int64_t{0})});
}

void JetStreamCluster::Core::on_mismatch_entry(const KvEntry& e) {
  json j = json::parse(e.value, nullptr, false);
  if (!j.is_object() || !j["post"].is_string() || !j["claimed"].is_array() || !j["at_ms"].is_array()) return;
  const auto total = j.value("total", std::uint64_t{0});
  auto& seen = mismatch_totals[e.key];
  // Totals only grow within an instance's life; a lower one is a restarted instance's.
  const std::uint64_t fresh = total > seen ? total - seen : total < seen ? total : 0;
  seen = total;
  if (fresh == 0) return;
  SharedMismatch m;
  m.post = j["post"].get<std::string>();
  for (const auto& c : j["claimed"])
    if (c.is_string()) m.claimed.push_back(c.get<std::string>());
  std::vector<std::int64_t> at;
  for (const auto& t : j["at_ms"])
    if (t.is_number_integer()) at.push_back(t.get<std::int64_t>());
  const auto n = std::min<std::size_t>(fresh, at.size());
  m.at_ms.assign(at.end() - static_cast<std::ptrdiff_t>(n), at.end());
  if (!m.claimed.empty() && !m.at_ms.empty()) mismatches_new.push_back(std::move(m));
}

void JetStreamCluster::Core::write_mismatches() {
  for (auto& [post, m] : mismatches_out) {
    if (!m.dirty) continue;
    m.dirty = false;
    write_shared("mismatch." + post + "." + options.instance,
                 json{{"post", post}, {"total", m.total}, {"claimed", m.claimed}, {"at_ms", m.at_ms}}.dump());
  }
}

void JetStreamCluster::Core::on_board_written() {
  board_in_flight = false;
  if (board_waiting) {
    board_in_flight = true;
    write_board(std::move(*board_waiting));
    board_waiting.reset();
  }
}

void JetStreamCluster::publish_board(std::string image) {
  auto& c = *core_;
  if (c.board_in_flight) {
    c.board_waiting = std::move(image);  // only the newest goes next
    return;
  }
  c.board_in_flight = true;
  c.write_board(std::move(image));
}

std::optional<std::string> JetStreamCluster::take_board() {
  auto out = std::move(core_->board_latest);
  core_->board_latest.reset();
  return out;
}

void JetStreamCluster::share_ack(const SharedAck& ack) {
  core_->write_shared("ack." + std::to_string(ack.alarm),
                      json{{"by", ack.by}, {"comment", ack.comment}, {"at_ms", ack.at_ms}}.dump());
}

void JetStreamCluster::share_mismatch(const std::string& topic_post, const std::string& claimed, std::int64_t at_ms) {
  auto& m = core_->mismatches_out[topic_post];
  m.record(claimed, at_ms, 16);
  m.dirty = true;
}

std::vector<JetStreamCluster::SharedMismatch> JetStreamCluster::take_mismatches() {
  std::vector<SharedMismatch> out;
  out.swap(core_->mismatches_new);
  return out;
}

void JetStreamCluster::share_silence(std::uint64_t id, std::string silence_json) {
  core_->write_shared("silence." + std::to_string(id), std::move(silence_json));
}

std::vector<std::string> JetStreamCluster::take_silences() {
  std::vector<std::string> out;
  out.swap(core_->silences_new);
  return out;
}

void JetStreamCluster::share_figure(const std::string& key, std::string figure_json) {
  core_->write_shared("figure." + key, std::move(figure_json));
}

std::vector<std::string> JetStreamCluster::take_figures() {
  std::vector<std::string> out;
  out.swap(core_->figures_new);
  return out;
}

std::vector<JetStreamCluster::SharedAck> JetStreamCluster::take_acks() {
  std::vector<SharedAck> out;
  out.swap(core_->acks_new);
  return out;
}

}  // namespace postwatch::aggregator
