// postwatch-bench-wire-size: bytes per event on the wire for batches of 1, 10 and 100 events,
// plain FlatBuffers against zstd and zstd with the catalogue's dictionary (docs/wire-format.md,
// "PackedBatch"), next to the same events as JSON lines and as a Sparkplug B-style protobuf
// payload, all measured in this run; and the CPU each packing costs per batch, against encoding.
//   postwatch-bench-wire-size [--catalogue FILE] [--json FILE]
// Deterministic: the same catalogue gives the same sizes on every machine.
#include "bench_events.hpp"
#include "postwatch/batch_packing.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

using namespace postwatch;
using nlohmann::json;

namespace {

// Protobuf's wire encoding, enough for a Sparkplug B Payload { timestamp=1; metrics=2; seq=3 }
// with Metric { name=1; timestamp=3; datatype=4; double_value=13 | string_value=15 }.
void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void field_bytes(std::string& out, int field, const std::string& bytes) {
  varint(out, static_cast<std::uint64_t>(field) << 3 | 2);
  varint(out, bytes.size());
  out += bytes;
}
std::string sparkplug_payload(const EventBatch& b) {
  std::string out;
  varint(out, 1 << 3);
  varint(out, static_cast<std::uint64_t>(b.sent_at_ms));
  for (const auto& e : b.events) {
    std::string m;
    field_bytes(m, 1, e.indicator);
    varint(m, 3 << 3);
    varint(m, static_cast<std::uint64_t>(e.observed_at_ms));
    varint(m, 4 << 3);
    varint(m, e.kind == ValueKind::Text ? 12 : 10);  // String : Double
    if (e.kind == ValueKind::Text) {
      field_bytes(m, 15, e.text);
    } else {
      varint(m, 13 << 3 | 1);
      char d[8];
      std::memcpy(d, &e.number, 8);
      m.append(d, 8);
    }
    field_bytes(out, 2, m);
  }
  varint(out, 3 << 3);
  varint(out, b.events.empty() ? 0 : b.events.back().seq % 256);
  return out;
}

// The agent's own input format (docs/agent.md): one JSON object per event.
std::string json_lines(const EventBatch& b) {
  std::string out;
  for (const auto& e : b.events) {
    json j{{"seq", e.seq}, {"indicator", e.indicator}, {"observed_at_ms", e.observed_at_ms}};
    if (e.kind == ValueKind::Text)
      j["text"] = e.text;
    else
      j["value"] = e.number;
    out += j.dump() + "\n";
  }
  return out;
}

// An MQTT 3.1.1 QoS 1 PUBLISH of `payload` bytes on `topic`, and its PUBACK.
std::size_t mqtt_framing(std::size_t topic, std::size_t payload) {
  const std::size_t remaining = 2 + topic + 2 + payload;
  std::size_t length_bytes = 1;
  for (std::size_t r = remaining; r >= 128; r >>= 7) ++length_bytes;
  return 1 + length_bytes + remaining - payload + 4;
}

template <typename F>
double ns_per_call(F&& f) {
  // Enough calls for a stable figure, not so many that batch 100 with zstd takes long.
  const int calls = 2000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) f();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / calls;
}

}  // namespace

int main(int argc, char** argv) {
  std::string catalogue_file = POSTWATCH_BENCH_CATALOGUE, json_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--catalogue" && i + 1 < argc)
      catalogue_file = argv[++i];
    else if (a == "--json" && i + 1 < argc)
      json_file = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--catalogue FILE] [--json FILE]\n", argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  const auto catalogue = IndicatorCatalogue::load(catalogue_file);
  const bench::EventMaker maker(catalogue);
  const auto dictionary = BatchDictionary::for_catalogue(catalogue);
  BatchPacker zstd, with_dict(dictionary);
  BatchUnpacker unpacker({dictionary});
  const std::string post = catalogue.posts().front().id;
  const std::string topic =
      topics::agent_topic(catalogue.posts().front().region, post, post + "-1", topics::Channel::Events);

  std::printf("dictionary: %zu bytes, id %08x; topic of %zu bytes\n", dictionary->size(), dictionary->id(),
              topic.size());
  std::printf("%-6s %8s %10s %11s %7s %11s %14s   %s\n", "batch", "JSON", "Sparkplug", "FlatBuffers", "zstd",
              "zstd+dict", "+MQTT framing", "(bytes per event; last: zstd+dict with PUBLISH+PUBACK)");
  json out = json::object();
  std::uint64_t seq = 1;
  for (std::size_t n : {1, 10, 100}) {
    // The average over 50 consecutive batches of a stream, as an agent would send them.
    double sizes[5] = {};
    std::size_t framed = 0;
    const int batches = 50;
    EventBatch b{post + "-1", post, 1764000000000, {}};
    for (int k = 0; k < batches; ++k) {
      b.events.clear();
      for (std::size_t i = 0; i < n; ++i, ++seq)
        b.events.push_back(maker.make(seq, seq, 1764000000000 + static_cast<std::int64_t>(seq) * 500));
      b.sent_at_ms = b.events.back().observed_at_ms + 40;
      const auto plain = encode_batch(b);
      const auto packed = with_dict.pack(plain);
      sizes[0] += static_cast<double>(json_lines(b).size());
      sizes[1] += static_cast<double>(sparkplug_payload(b).size());
      sizes[2] += static_cast<double>(plain.size());
      sizes[3] += static_cast<double>(zstd.pack(plain).size());
      sizes[4] += static_cast<double>(packed.size());
      framed += packed.size() + mqtt_framing(topic.size(), packed.size());
    }
    const double per = static_cast<double>(n) * batches;
    for (auto& s : sizes) s /= per;
    const double framed_per = static_cast<double>(framed) / per;
    std::printf("%-6zu %8.1f %10.1f %11.1f %7.1f %11.1f %14.1f\n", n, sizes[0], sizes[1], sizes[2], sizes[3], sizes[4],
                framed_per);

    // CPU per batch of the last one: encoding (the baseline), packing, unpacking.
    const auto plain = encode_batch(b);
    const auto packed = with_dict.pack(plain);
    std::vector<std::uint8_t> back;
    const double encode_ns = ns_per_call([&] { (void)encode_batch(b); });
    const double zstd_ns = ns_per_call([&] { (void)zstd.pack(plain); });
    const double dict_ns = ns_per_call([&] { (void)with_dict.pack(plain); });
    const double unpack_ns = ns_per_call([&] { (void)unpacker.unpack(packed, back); });
    std::printf("       CPU per batch: encode %.1f us, zstd %.1f us, zstd+dict %.1f us, unpack %.1f us\n",
                encode_ns / 1000, zstd_ns / 1000, dict_ns / 1000, unpack_ns / 1000);
    const std::string k = "batch_" + std::to_string(n);
    out[k] = {{"json_bytes_per_event", sizes[0]},        {"sparkplug_bytes_per_event", sizes[1]},
              {"flatbuffers_bytes_per_event", sizes[2]}, {"zstd_bytes_per_event", sizes[3]},
              {"zstd_dict_bytes_per_event", sizes[4]},   {"zstd_dict_with_mqtt_bytes_per_event", framed_per},
              {"encode_us", encode_ns / 1000},           {"zstd_us", zstd_ns / 1000},
              {"zstd_dict_us", dict_ns / 1000},          {"unpack_us", unpack_ns / 1000}};
  }
  if (!json_file.empty()) std::ofstream(json_file) << out.dump(2) << "\n";
  return 0;
}
