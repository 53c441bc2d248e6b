#include "rollup/indicator_state.hpp"

namespace postwatch::aggregator {

namespace {
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
}  // namespace

bool CountWindow::add(std::int64_t observed_at_ms, double count, std::int64_t window_ms) {
  const std::int64_t width = std::max<std::int64_t>(1, window_ms / kBuckets);
  const std::int64_t id = floor_div(observed_at_ms, width) + 1;  // +1 keeps 0 free for "empty"
  auto slot = static_cast<std::size_t>(((id % kBuckets) + kBuckets) % kBuckets);
  if (bucket_id_[slot] > id) return false;  // the slot already holds a newer bucket: too old to count
  if (bucket_id_[slot] < id) {
    bucket_id_[slot] = id;
    sums_[slot] = 0;
  }
  sums_[slot] += count;
  return true;
}

double CountWindow::sum(std::int64_t now_ms, std::int64_t window_ms) const {
  const std::int64_t width = std::max<std::int64_t>(1, window_ms / kBuckets);
  const std::int64_t newest = floor_div(now_ms, width) + 1;
  double s = 0;
  for (int i = 0; i < kBuckets; ++i)
    if (bucket_id_[i] > newest - kBuckets && bucket_id_[i] <= newest) s += sums_[i];
  return s;
}

IndicatorState::IndicatorState(const IndicatorCatalogue& catalogue)
    : catalogue_(catalogue),
      posts_(static_cast<std::uint32_t>(catalogue.posts().size())),
      indicators_(static_cast<std::uint32_t>(catalogue.indicators().size())),
      cells_(static_cast<std::size_t>(posts_) * indicators_),
      window_ix_(indicators_, -1),
      texts_(static_cast<std::size_t>(posts_) * indicators_),
      last_seen_(posts_, 0) {
  for (std::uint32_t i = 0; i < indicators_; ++i)
    if (catalogue.indicators()[i].kind == ValueKind::Count && catalogue.indicators()[i].on_board())
      window_ix_[i] = static_cast<std::int32_t>(count_indicators_++);
  windows_.resize(static_cast<std::size_t>(posts_) * count_indicators_);
}

void IndicatorState::touch(std::uint32_t post, std::int64_t received_at_ms) {
  if (received_at_ms > last_seen_[post]) last_seen_[post] = received_at_ms;
}

bool IndicatorState::apply(std::uint32_t post, std::uint32_t indicator, const EventView& e, std::int64_t received_at_ms,
                           std::int64_t clock_correction_ms) {
  touch(post, received_at_ms);
  bool changed = false;
  if (auto w = window_ix_[indicator]; w >= 0) {
    auto& window = windows_[static_cast<std::size_t>(post) * count_indicators_ + static_cast<std::size_t>(w)];
    changed = window.add(e.observed_at_ms, e.number, catalogue_.indicators()[indicator].window_s * 1000);
  }
  auto ix = index(post, indicator);
  Reading& r = cells_[ix];
  bool newer = !r.present || e.observed_at_ms > r.observed_at_ms ||
               (e.observed_at_ms == r.observed_at_ms && e.number > r.number && e.kind != ValueKind::Text);
  if (newer) {
    r.number = e.number;
    r.observed_at_ms = e.observed_at_ms;
    r.received_at_ms = received_at_ms;
    r.clock_correction_ms = clock_correction_ms;
    r.present = true;
    if (e.kind == ValueKind::Text) texts_[ix].assign(e.text);
    changed = true;
  }
  if (changed) ++version_;
  return changed;
}

double IndicatorState::value(std::uint32_t post, std::uint32_t indicator, std::int64_t now_ms) const {
  if (auto w = window_ix_[indicator]; w >= 0)
    return windows_[static_cast<std::size_t>(post) * count_indicators_ + static_cast<std::size_t>(w)].sum(
        now_ms, catalogue_.indicators()[indicator].window_s * 1000);
  return cells_[index(post, indicator)].number;
}

const std::string& IndicatorState::text_at(std::uint32_t post, std::uint32_t indicator) const {
  return texts_[index(post, indicator)];
}

std::vector<std::pair<std::int64_t, double>> CountWindow::buckets() const {
  std::vector<std::pair<std::int64_t, double>> out;
  for (int i = 0; i < kBuckets; ++i)
    if (bucket_id_[i] != 0) out.emplace_back(bucket_id_[i], sums_[i]);
  return out;
}

void CountWindow::restore(const std::vector<std::pair<std::int64_t, double>>& buckets) {
  bucket_id_.fill(0);
  sums_.fill(0);
  for (const auto& [id, sum] : buckets) {
    if (id <= 0) continue;
    auto slot = static_cast<std::size_t>(id % kBuckets);
    if (bucket_id_[slot] > id) continue;
    bucket_id_[slot] = id;
    sums_[slot] = sum;
  }
}

PostRows IndicatorState::export_post(std::uint32_t post) const {
  PostRows rows;
  rows.last_seen_ms = last_seen_[post];
  for (std::uint32_t i = 0; i < indicators_; ++i) {
    const Reading& r = cells_[index(post, i)];
    if (r.present) rows.cells.push_back({i, r, texts_[index(post, i)]});
    if (auto w = window_ix_[i]; w >= 0) {
      auto b = windows_[static_cast<std::size_t>(post) * count_indicators_ + static_cast<std::size_t>(w)].buckets();
      if (!b.empty()) rows.windows.push_back({i, std::move(b)});
    }
  }
  return rows;
}

void IndicatorState::import_post(std::uint32_t post, const PostRows& rows) {
  last_seen_[post] = rows.last_seen_ms;
  for (std::uint32_t i = 0; i < indicators_; ++i) {
    cells_[index(post, i)] = Reading{};
    texts_[index(post, i)].clear();
    if (auto w = window_ix_[i]; w >= 0)
      windows_[static_cast<std::size_t>(post) * count_indicators_ + static_cast<std::size_t>(w)].restore({});
  }
  for (const auto& c : rows.cells) {
    if (c.indicator >= indicators_) continue;
    cells_[index(post, c.indicator)] = c.reading;
    cells_[index(post, c.indicator)].present = true;
    texts_[index(post, c.indicator)] = c.text;
  }
  for (const auto& w : rows.windows)
    if (w.indicator < indicators_ && window_ix_[w.indicator] >= 0)
      windows_[static_cast<std::size_t>(post) * count_indicators_ + static_cast<std::size_t>(window_ix_[w.indicator])]
          .restore(w.buckets);
  ++version_;
}

}  // namespace postwatch::aggregator
