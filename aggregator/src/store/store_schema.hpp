// The store's tables (SQLite), created when missing. Here on its own so that what reads a
// store without the aggregator (the progress report's tests) makes the very same tables.
#pragma once

namespace postwatch::aggregator {

// event_batches: one row per handed-over agent batch (store/stored_batch.hpp). Rows are
// appended in id order; the index serves a post's history by observed time.
inline constexpr const char* kStoreSchema = R"sql(
CREATE TABLE IF NOT EXISTS event_batches(
  id INTEGER PRIMARY KEY, post TEXT NOT NULL, agent TEXT NOT NULL,
  first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
  min_observed_ms INTEGER NOT NULL, max_observed_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL,
  crc INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS event_batches_by_post ON event_batches(post, max_observed_ms);
CREATE TABLE IF NOT EXISTS indicator_codes(code INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS history(
  at_ms INTEGER NOT NULL, scope TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, score REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_id ON history(scope, id, at_ms);
CREATE TABLE IF NOT EXISTS alarms(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS silences(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS strategy_readings(
  indicator TEXT NOT NULL, observed_at_ms INTEGER NOT NULL, value REAL NOT NULL, post TEXT NOT NULL,
  agent TEXT NOT NULL, seq INTEGER NOT NULL, received_at_ms INTEGER NOT NULL, PRIMARY KEY(indicator, observed_at_ms));
CREATE TABLE IF NOT EXISTS trust_records(key TEXT PRIMARY KEY, body TEXT NOT NULL);
)sql";

}  // namespace postwatch::aggregator
