// libFuzzer: fleet bundles (docs/fleet.md) from the network. open_bundle must refuse bad input
// with a reason, never crash. A mutated envelope never gets past the signature, so the input
// is also signed here as a document, which sends it through the document's parser; and it is
// applied as a config overlay, the agent's next step.
#include "postwatch/agent/bundle_overlay.hpp"
#include "postwatch/fleet_bundle.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

const postwatch::SigningKey& fleet_key() {
  static const auto key = postwatch::SigningKey::from_seed({1, 2, 3});
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<postwatch::PublicKey> keys{fleet_key().public_key()};
  postwatch::open_bundle(text, keys);

  const std::string signed_text = std::string(postwatch::kBundleFormat) + "\n" + text;
  const auto sig = fleet_key().sign({reinterpret_cast<const std::uint8_t*>(signed_text.data()), signed_text.size()});
  nlohmann::json envelope{{"format", postwatch::kBundleFormat},
                          {"document", text},
                          {"key_id", fleet_key().key_id()},
                          {"signature", postwatch::to_hex(sig)}};
  std::string dumped;
  try {
    dumped = envelope.dump();
  } catch (const nlohmann::json::exception&) {
    return 0;  // not UTF-8: a JSON document cannot carry it
  }
  auto opened = postwatch::open_bundle(dumped, keys);
  if (opened.ok() && !opened.bundle.config.empty()) {
    std::vector<postwatch::agent::ConfigProblem> problems;
    postwatch::agent::apply_config_overlay(R"({"agent_id": "a", "post_id": "bamako"})", opened.bundle.config, problems);
  }
  std::vector<postwatch::agent::ConfigProblem> problems;
  postwatch::agent::apply_config_overlay(R"({"agent_id": "a", "post_id": "bamako"})", text, problems);
  return 0;
}
