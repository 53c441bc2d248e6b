#include "rollouts/catalogue_adoption.hpp"

#include "rollouts/durable_file.hpp"

#include <stdexcept>
#include <system_error>

namespace postwatch::aggregator {

namespace fs = std::filesystem;

namespace {

fs::path kept_file(const fs::path& dir, std::uint32_t version) {
  return dir / ("v" + std::to_string(version) + ".json");
}

}  // namespace

std::string catalogue_change_problem(const IndicatorCatalogue& in_use, const IndicatorCatalogue& next) {
  for (const auto& p : in_use.posts()) {
    const Post* q = next.find_post(p.id);
    if (!q) return "it drops post '" + p.id + "', which this aggregator's store and agents still use";
    if (q->region != p.region)
      return "it moves post '" + p.id + "' from region '" + p.region + "' to '" + q->region +
             "' (its agents' topics name the region)";
  }
  bool adds = false;
  for (const auto& i : in_use.indicators()) {
    const Indicator* j = next.find_indicator(i.id);
    if (!j)
      return "it drops indicator '" + i.id + "': events agents spooled under catalogue_version " +
             std::to_string(in_use.version()) + " would be refused";
    if (j->kind != i.kind)
      return "it changes indicator '" + i.id + "' from " + std::string(to_string(i.kind)) + " to " +
             std::string(to_string(j->kind));
  }
  for (const auto& j : next.indicators()) adds = adds || !in_use.find_indicator(j.id);
  if (adds && next.version() <= in_use.version())
    return "it adds indicators but its catalogue_version " + std::to_string(next.version()) +
           " is not above the aggregator's " + std::to_string(in_use.version()) +
           ": raise catalogue_version, so each batch says which catalogue its events were checked with";
  return {};
}

AdoptedCatalogues::AdoptedCatalogues(fs::path dir) : dir_(std::move(dir)) {}

void AdoptedCatalogues::adopt(std::string_view text, std::uint32_t version, std::string_view in_use_text,
                              std::uint32_t in_use_version) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create " + dir_.string() + ": " + ec.message());
  if (!in_use_text.empty() && !fs::exists(kept_file(dir_, in_use_version)))
    replace_file_durably(kept_file(dir_, in_use_version), in_use_text);
  replace_file_durably(kept_file(dir_, version), text);
  replace_file_durably(adopted_file(), text);  // last: the switch
}

fs::path AdoptedCatalogues::choose(const IndicatorCatalogue& configured, std::string& note) const {
  note.clear();
  if (!fs::exists(adopted_file())) return {};
  try {
    auto adopted = IndicatorCatalogue::load(adopted_file());
    if (adopted.version() <= configured.version()) {
      note = "the installed catalogue (catalogue_version " + std::to_string(configured.version()) +
             ") is not older than the one adopted from a rollout (" + std::to_string(adopted.version()) +
             "): using the installed one";
      return {};
    }
    if (auto why = catalogue_change_problem(configured, adopted); !why.empty()) {
      note = "the catalogue adopted from a rollout (" + adopted_file().string() +
             ") does not fit the installed one: " + why + "; using the installed one";
      return {};
    }
    return adopted_file();
  } catch (const CatalogueError& e) {
    note =
        std::string("the catalogue adopted from a rollout does not load (") + e.what() + "); using the installed one";
    return {};
  }
}

std::vector<std::shared_ptr<const IndicatorCatalogue>> AdoptedCatalogues::kept() const {
  std::vector<std::shared_ptr<const IndicatorCatalogue>> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.size() < 7 || name[0] != 'v' || !name.ends_with(".json")) continue;
    try {
      out.push_back(std::make_shared<const IndicatorCatalogue>(IndicatorCatalogue::load(it->path())));
    } catch (const CatalogueError&) {
      // One that does not load only costs its dictionary: agents on it fall back to plain zstd.
    }
  }
  return out;
}

}  // namespace postwatch::aggregator
