// Silences and maintenance windows (docs/alerting.md): what a request may ask, when a silence
// holds and whom it covers, what the router says when one ends, and that the store keeps them.
#include "silences/silence_book.hpp"
#include "alerting/notification_router.hpp"
#include "postwatch/clock.hpp"
#include "store/event_store.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>

using namespace postwatch;
using namespace postwatch::aggregator;
using namespace postwatch::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const IndicatorCatalogue& catalogue() { return shipped_catalogue(); }

constexpr std::int64_t kNow = 1'800'000'000'000;

// The message silence_from_request refuses `body` with, or "" when it accepts it.
std::string refusal(const json& body) {
  try {
    silence_from_request(body, catalogue(), "duty officer", kNow);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

AlarmNotice alarm(std::uint64_t id, const std::string& level, const std::string& post, bool silenced = false) {
  AlarmNotice a;
  a.id = id;
  a.kind = "goal";
  a.goal = 7;
  a.pillar = "defend";
  a.level = level;
  a.posts = {post};
  a.regions = {catalogue().find_post(post)->region};
  a.silenced = silenced;
  a.alarm = {{"id", id}, {"kind", "goal"}, {"goal", 7}, {"level", level}};
  return a;
}

std::vector<std::string> events_of(const std::vector<NotificationEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.body.value("event", ""));
  return out;
}

// A router with one webhook channel that every alarm goes to, reminding each `repeat_s`.
NotificationRouter router(const TempDir& dir, int repeat_s) {
  std::ofstream(dir.path() / "duty.secret") << "s3cret\n";
  std::filesystem::permissions(dir.path() / "duty.secret",
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto text = R"({"channels":[{"name":"duty","kind":"webhook","url":"http://127.0.0.1:9/","secret_file":"duty.secret"}],
                  "routes":[{"channels":["duty"],"repeat_interval_s":)" +
              std::to_string(repeat_s) + "}]}";
  return NotificationRouter(NotificationConfig::parse(text, "n.json", dir.path(), catalogue()));
}

}  // namespace

TEST(SilenceRequest, RefusesWhatCouldNotHoldOrWouldHideEverything) {
  const json ok{{"match", {{"post", "bamako"}}}, {"comment", "planned power works"}, {"duration_s", 3600}};
  EXPECT_EQ(refusal(ok), "");
  auto with = [&](const char* key, json value) {
    json b = ok;
    b[key] = std::move(value);
    return refusal(b);
  };
  auto without = [&](const char* key) {
    json b = ok;
    b.erase(key);
    return refusal(b);
  };
  EXPECT_NE(without("match").find("match is needed"), std::string::npos);
  EXPECT_NE(with("match", json::object()).find("a silence of everything is refused"), std::string::npos);
  EXPECT_NE(with("match", {{"post", "atlantis"}}).find("match.post: unknown post 'atlantis'"), std::string::npos)
      << with("match", {{"post", "atlantis"}});
  EXPECT_NE(with("match", {{"colour", "red"}}).find("match"), std::string::npos);
  EXPECT_NE(without("comment").find("comment is needed"), std::string::npos);
  EXPECT_NE(without("duration_s").find("either ends_at_ms or duration_s"), std::string::npos);
  EXPECT_NE(with("ends_at_ms", kNow + 1000).find("either ends_at_ms or duration_s"), std::string::npos);
  EXPECT_NE(with("duration_s", -5).find("positive number of seconds"), std::string::npos);
  EXPECT_NE(with("duration_s", 91 * 24 * 3600).find("at most 90 days"), std::string::npos);
  EXPECT_NE(with("starts_at_ms", "tomorrow").find("starts_at_ms must be a positive whole number"), std::string::npos);
  EXPECT_NE(with("oops", 1).find("unknown field 'oops'"), std::string::npos);
  EXPECT_EQ(with("maintenance", true), "");  // a window for bamako
  json maint{{"match", {{"kind", "post_silent"}}}, {"comment", "c"}, {"duration_s", 60}, {"maintenance", true}};
  EXPECT_NE(refusal(maint).find("a maintenance window must name its posts"), std::string::npos);
  json past{{"match", {{"post", "bamako"}}},
            {"comment", "c"},
            {"starts_at_ms", kNow - 7200'000},
            {"ends_at_ms", kNow - 3600'000}};
  EXPECT_NE(refusal(past).find("in the past"), std::string::npos);

  auto s = silence_from_request(ok, catalogue(), "duty officer", kNow);
  EXPECT_EQ(s.created_by, "duty officer");  // the token's name when the body names nobody
  EXPECT_EQ(s.starts_at_ms, kNow);
  EXPECT_EQ(s.ends_at_ms, kNow + 3600'000);
}

TEST(SilenceBook, HoldsFromItsStartToItsEndForWhatItMatches) {
  SilenceBook book(catalogue());
  json body{{"match", {{"post", "bamako"}, {"level", "red"}}},
            {"comment", "planned power works"},
            {"starts_at_ms", kNow + 1000},
            {"ends_at_ms", kNow + 5000}};
  const auto id = book.add(silence_from_request(body, catalogue(), "ops", kNow)).id;
  EXPECT_EQ(id, 1u);
  EXPECT_FALSE(book.silenced(alarm(1, "red", "bamako"), kNow));  // not yet
  std::uint64_t why = 0;
  EXPECT_TRUE(book.silenced(alarm(1, "red", "bamako"), kNow + 1000, &why));
  EXPECT_EQ(why, id);
  EXPECT_FALSE(book.silenced(alarm(1, "amber", "bamako"), kNow + 1000));  // another level
  EXPECT_FALSE(book.silenced(alarm(1, "red", "kabul"), kNow + 1000));     // another post
  EXPECT_FALSE(book.silenced(alarm(1, "red", "bamako"), kNow + 5000));    // over

  EXPECT_TRUE(book.tick(kNow).empty());
  auto t = book.tick(kNow + 1000);
  EXPECT_EQ(t.started, std::vector<std::uint64_t>{id});
  t = book.tick(kNow + 2000);
  EXPECT_TRUE(t.empty());
  // Ended early by an operator: over at once, and listed as expired with who ended it.
  auto ended = book.end(id, "night desk", kNow + 2500);
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->ended_by, "night desk");
  EXPECT_STREQ(ended->state(kNow + 2500), "expired");
  EXPECT_FALSE(book.silenced(alarm(1, "red", "bamako"), kNow + 2600));
  EXPECT_EQ(book.tick(kNow + 2600).ended, std::vector<std::uint64_t>{id});
  EXPECT_FALSE(book.end(99, "x", kNow));
  // Listed for 30 days after its end, then dropped.
  EXPECT_TRUE(book.tick(kNow + 2500 + kKeepEndedSilenceMs).dropped.empty());
  EXPECT_EQ(book.tick(kNow + 2501 + kKeepEndedSilenceMs).dropped, std::vector<std::uint64_t>{id});
  EXPECT_TRUE(book.all().empty());
}

// Clustered (docs/scale-out.md): two instances take silences in the same millisecond under
// different ids, each merges the other's through the shared state, and an end taken on
// either holds on both, never undone by an older copy.
TEST(SilenceBook, InstancesOfAClusterFileApartAndMergeEachOthersSilences) {
  SilenceBook a(catalogue()), b(catalogue());
  a.use_cluster_ids("agg-1");
  b.use_cluster_ids("agg-2");
  json body{{"match", {{"post", "bamako"}}}, {"comment", "power works"}, {"duration_s", 3600}};
  const Silence sa = a.add(silence_from_request(body, catalogue(), "desk a", kNow));
  const Silence sb = b.add(silence_from_request(body, catalogue(), "desk b", kNow));
  EXPECT_NE(sa.id, sb.id);
  EXPECT_EQ(sa.id >> 10, static_cast<std::uint64_t>(kNow));                             // ids sort by time
  EXPECT_GT(a.add(silence_from_request(body, catalogue(), "desk a", kNow)).id, sa.id);  // same ms, same instance

  // Through the shared state: as silence_json, as the cluster carries it.
  auto shared = [](const Silence& s) { return *silence_from_json(silence_json(s, kNow)); };
  EXPECT_TRUE(b.merge(shared(sa)));
  EXPECT_FALSE(b.merge(shared(sa)));  // again: nothing new
  EXPECT_TRUE(a.merge(shared(sb)));
  ASSERT_NE(b.find(sa.id), nullptr);
  EXPECT_EQ(b.find(sa.id)->created_by, "desk a");
  EXPECT_TRUE(b.silenced(alarm(1, "red", "bamako"), kNow + 1));

  const Silence ended = *b.end(sa.id, "night desk", kNow + 1000);
  EXPECT_FALSE(a.merge(shared(sa)));  // the old copy ends nothing
  EXPECT_TRUE(a.merge(shared(ended)));
  EXPECT_EQ(a.find(sa.id)->ended_by, "night desk");
  EXPECT_FALSE(a.merge(shared(sa)));  // and an older copy does not undo the end
  EXPECT_EQ(a.find(sa.id)->end_ms(), kNow + 1000);
  EXPECT_FALSE(a.find(sa.id)->holds(kNow + 1000));
  // The book stays sorted by id whatever order the merges came in.
  for (const auto* book : {&a, &b})
    EXPECT_TRUE(std::is_sorted(book->all().begin(), book->all().end(),
                               [](const Silence& x, const Silence& y) { return x.id < y.id; }));
}

TEST(SilenceBook, AMaintenanceWindowCoversItsPostsAndRegions) {
  SilenceBook book(catalogue());
  const auto& cat = catalogue();
  const auto bamako = *cat.post_index("bamako");
  const std::string region = cat.posts()[bamako].region;
  json by_post{
      {"match", {{"post", "kabul"}}}, {"comment", "generator swap"}, {"duration_s", 600}, {"maintenance", true}};
  json by_region{
      {"match", {{"region", region}}}, {"comment", "satellite link works"}, {"duration_s", 600}, {"maintenance", true}};
  json plain{{"match", {{"post", "kyiv"}}}, {"comment", "not maintenance"}, {"duration_s", 600}};
  const auto a = book.add(silence_from_request(by_post, cat, "ops", kNow)).id;
  const auto b = book.add(silence_from_request(by_region, cat, "ops", kNow)).id;
  book.add(silence_from_request(plain, cat, "ops", kNow));
  auto m = book.maintenance(kNow + 1);
  EXPECT_EQ(m[*cat.post_index("kabul")], a);
  EXPECT_EQ(m[bamako], b);
  EXPECT_EQ(m[*cat.post_index("kyiv")], 0u);  // a plain silence does not make a post not silent
  std::size_t covered = 0;
  for (std::size_t p = 0; p < m.size(); ++p) covered += m[p] != 0;
  std::size_t in_region = 0;
  for (const auto& p : cat.posts()) in_region += p.region == region;
  EXPECT_EQ(covered, in_region + 1);
  EXPECT_EQ(book.maintenance(kNow + 600'000)[bamako], 0u);  // over
}

TEST(SilenceRouting, AnAlarmRaisedUnderASilenceIsToldOnceItEnds) {
  TempDir dir;
  auto r = router(dir, 60);
  // Raised while silenced: nothing, and no reminders either.
  EXPECT_TRUE(r.on_alarm(alarm(1, "amber", "bamako", true), kNow).empty());
  EXPECT_TRUE(r.due_reminders(kNow + 120'000).empty());
  // Escalated while silenced: still nothing.
  EXPECT_TRUE(r.on_alarm(alarm(1, "red", "bamako", true), kNow + 130'000).empty());
  // The silence ends with the alarm open: it is told, as raised (it never was), at its level now.
  auto told = r.on_alarm(alarm(1, "red", "bamako", false), kNow + 140'000);
  ASSERT_EQ(events_of(told), std::vector<std::string>{"raised"});
  EXPECT_EQ(told[0].body["level"], "red");
  // Reminders go on from then.
  EXPECT_TRUE(r.due_reminders(kNow + 150'000).empty());
  EXPECT_EQ(events_of(r.due_reminders(kNow + 201'000)), std::vector<std::string>{"repeat"});
}

TEST(SilenceRouting, ASilenceOverAToldAlarmSaysOnlyWhatChangedMeanwhile) {
  TempDir dir;
  auto r = router(dir, 0);
  ASSERT_EQ(events_of(r.on_alarm(alarm(1, "amber", "bamako"), kNow)), std::vector<std::string>{"raised"});
  ASSERT_EQ(events_of(r.on_alarm(alarm(2, "red", "kabul"), kNow)), std::vector<std::string>{"raised"});
  // A silence starts over both; alarm 1 escalates under it, alarm 2 does not change.
  EXPECT_TRUE(r.on_alarm(alarm(1, "amber", "bamako", true), kNow + 1).empty());
  EXPECT_TRUE(r.on_alarm(alarm(2, "red", "kabul", true), kNow + 1).empty());
  EXPECT_TRUE(r.on_alarm(alarm(1, "red", "bamako", true), kNow + 2).empty());
  // It ends: alarm 1 is told it escalated; alarm 2 is not told again.
  EXPECT_EQ(events_of(r.on_alarm(alarm(1, "red", "bamako"), kNow + 3)), std::vector<std::string>{"escalated"});
  EXPECT_TRUE(r.on_alarm(alarm(2, "red", "kabul"), kNow + 3).empty());
  // Raised and cleared under a silence: never told at all.
  EXPECT_TRUE(r.on_alarm(alarm(3, "red", "kyiv", true), kNow + 4).empty());
  auto cleared = alarm(3, "red", "kyiv", true);
  cleared.open = false;
  EXPECT_TRUE(r.on_alarm(cleared, kNow + 5).empty());
  cleared.silenced = false;
  EXPECT_EQ(events_of(r.on_alarm(cleared, kNow + 6)), std::vector<std::string>{"cleared"});  // a new look
}

TEST(SilenceStore, SilencesAreKeptAcrossARestart) {
  TempDir dir;
  StoreOptions opt{dir.path() / "store.sqlite"};
  opt.commit_interval = 5ms;
  auto quiet = std::make_shared<spdlog::logger>("q", std::make_shared<spdlog::sinks::null_sink_mt>());
  const auto now = now_utc_ms();
  SilenceBook book(catalogue());
  json body{
      {"match", {{"post", "bamako"}}}, {"comment", "planned power works"}, {"duration_s", 3600}, {"maintenance", true}};
  {
    EventStore store(opt, catalogue(), quiet);
    store.start();
    const auto& a = book.add(silence_from_request(body, catalogue(), "ops", now));
    store.save_silence(a.id, silence_json(a, now).dump());
    const auto& b = book.add(silence_from_request(body, catalogue(), "ops", now));
    store.save_silence(b.id, silence_json(b, now).dump());
    auto ended = book.end(b.id, "night desk", now + 10);
    store.save_silence(b.id, silence_json(*ended, now).dump());
    store.save_silence(3, silence_json(b, now).dump());
    store.save_silence(3, "");  // dropped
    ASSERT_TRUE(store.flush(5s));
  }
  EventStore store(opt, catalogue(), quiet);
  std::vector<Silence> kept;
  for (const auto& text : store.load_silences()) {
    auto s = silence_from_json(json::parse(text));
    ASSERT_TRUE(s) << text;
    kept.push_back(*s);
  }
  ASSERT_EQ(kept.size(), 2u);
  SilenceBook again(catalogue());
  again.restore(kept);
  ASSERT_NE(again.find(1), nullptr);
  EXPECT_TRUE(again.find(1)->maintenance);
  EXPECT_EQ(again.find(1)->match.posts, std::vector<std::string>{"bamako"});
  EXPECT_TRUE(again.find(1)->holds(now + 1));
  EXPECT_EQ(again.find(2)->ended_by, "night desk");
  EXPECT_FALSE(again.find(2)->holds(now + 11));
  EXPECT_EQ(again.add(silence_from_request(body, catalogue(), "ops", now)).id, 3u);  // ids go on
}
