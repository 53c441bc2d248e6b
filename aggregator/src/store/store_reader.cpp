#include "store/store_reader.hpp"

#include "store/batch_row.hpp"

#include <stdexcept>

namespace postwatch::aggregator {
using sqlite::Statement;

namespace {
bool has_table(sqlite3* db, const char* name) {
  Statement q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  sqlite3_bind_text(q.get(), 1, name, -1, SQLITE_STATIC);
  return sqlite3_step(q.get()) == SQLITE_ROW;
}
}  // namespace

StoreReader::StoreReader(const std::filesystem::path& file) : file_(file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw std::runtime_error(file.string() + ": no such store file");
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(file.string() + ": cannot open: " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    if (!has_table(db_, "event_batches")) {
      if (has_table(db_, "events"))
        throw std::runtime_error(
            "a store in the old per-event layout; start postwatch-aggregator on it once to convert it");
      throw std::runtime_error("not a Postwatch store (it has no event_batches table)");
    }
    name_of_.assign(1, std::string());
    Statement q(db_, "SELECT code, id FROM indicator_codes");
    while (sqlite3_step(q.get()) == SQLITE_ROW) {
      const auto code = sqlite3_column_int64(q.get(), 0);
      if (code <= 0 || code > 1'000'000) throw std::runtime_error("indicator_codes holds code " + std::to_string(code));
      if (name_of_.size() <= static_cast<std::size_t>(code)) name_of_.resize(static_cast<std::size_t>(code) + 1);
      name_of_[static_cast<std::size_t>(code)] = sqlite::text_col(q.get(), 1);
    }
  } catch (const std::runtime_error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

StoreReader::~StoreReader() { sqlite3_close(db_); }

StoreScan StoreReader::scan(const StoredEventFilter& filter, const std::function<void(const StoredEventRow&)>& fn) {
  std::string sql = kBatchColumns;
  sql += "WHERE (?1 = '' OR post = ?1) AND (?2 = '' OR agent = ?2) ORDER BY id";
  Statement q(db_, sql.c_str());
  sqlite3_bind_text(q.get(), 1, filter.post.c_str(), -1, SQLITE_STATIC);
  sqlite3_bind_text(q.get(), 2, filter.agent.c_str(), -1, SQLITE_STATIC);
  StoreScan out;
  StoredEventRow row;
  BatchRow b;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    b.read(q.get(), row);
    out.records += 1;
    std::uint32_t passed = 0;
    const bool ok = b.intact && decode_stored_batch(b.body, b.summary, name_of_, row, [&](const StoredEventRow& r) {
                      ++passed;
                      if (!filter.indicator.empty() && r.indicator != filter.indicator) return;
                      out.events += 1;
                      fn(r);
                    });
    if (!ok)
      out.damaged.push_back({b.id, row.post, row.agent, b.summary.first_seq, b.summary.last_seq, b.summary.count,
                             b.summary.count - passed, b.intact ? "it does not decode" : "checksum mismatch"});
  }
  if (rc != SQLITE_DONE) throw std::runtime_error(file_.string() + ": read failed: " + sqlite3_errmsg(db_));
  return out;
}

}  // namespace postwatch::aggregator
