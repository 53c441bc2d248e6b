// A catalogue rolled out to the fleet is adopted by the aggregator first (docs/fleet.md,
// "A new indicator"): checked against the one in use, written to <data-dir>/catalogues, and the
// aggregator restarts on it before any agent gets the bundle, so no agent ever sends an
// indicator the aggregator does not know. The catalogues it ran before stay there too: agents
// not yet reached compress their batches with their dictionaries (docs/agent.md, "Thin links").
#pragma once

#include "postwatch/catalogue.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postwatch::aggregator {

// Why the aggregator cannot move from `in_use` to `next`, empty when it can. `next` must keep
// every post (same region) and every indicator (same kind): events agents spooled under the
// old catalogue are then still accepted, and so are the store's. An indicator it adds needs
// a higher catalogue_version, so each batch's version says which catalogue it was checked with.
std::string catalogue_change_problem(const IndicatorCatalogue& in_use, const IndicatorCatalogue& next);

class AdoptedCatalogues {
 public:
  explicit AdoptedCatalogues(std::filesystem::path dir);  // <data-dir>/catalogues

  // Writes `text` (a catalogue of version `version`) as the one to start on from now, and keeps
  // `in_use_text` of `in_use_version` beside it. Durable (fsynced, renamed) before it returns;
  // throws std::runtime_error naming the file when it cannot write.
  void adopt(std::string_view text, std::uint32_t version, std::string_view in_use_text,
             std::uint32_t in_use_version) const;

  // The adopted catalogue to start on, when there is one that loads, is newer than the
  // installed `configured` one and keeps all of it; otherwise empty, with `note` saying why
  // an adopted one was passed over (empty when there is none).
  std::filesystem::path choose(const IndicatorCatalogue& configured, std::string& note) const;

  // Every catalogue kept (adopted or run before), for their batch dictionaries.
  std::vector<std::shared_ptr<const IndicatorCatalogue>> kept() const;

  std::filesystem::path adopted_file() const { return dir_ / "adopted.json"; }

 private:
  std::filesystem::path dir_;
};

}  // namespace postwatch::aggregator
