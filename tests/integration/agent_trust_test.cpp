// End-to-end trust (docs/security.md) with the real postwatch-agent, a real Mosquitto and the
// real aggregator: enrolment with a one-time token, signed batches, batches forged on an
// enrolled agent's topic, forged confirmations, and revocation.
#include "postwatch/clock.hpp"
#include "support/mqtt_probe.hpp"
#include "trust_test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <optional>

using namespace postwatch;
using namespace postwatch::test;

TEST_F(Trust, AnEnrolledAgentSignsItsEventsAndTheAggregatorConfirmsThemSigned) {
  auto r = enrol(token_for());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("enrolled bamako/gw-1"), std::string::npos) << r.output;
  struct stat st {};
  ASSERT_EQ(::stat(key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto keys = api("/api/v1/agent-keys");
  ASSERT_EQ(keys["keys"].size(), 1u) << keys.dump();
  EXPECT_EQ(keys["keys"][0]["state"], "in_force");
  auto agent_key = SigningKey::load(key_file);
  EXPECT_EQ(keys["keys"][0]["key_id"], agent_key.key_id());
  EXPECT_EQ(read_public_keys(aggregator_key_file).front(),
            *public_key_from_hex(keys["aggregator_key"]["public_key"].get<std::string>()));

  // --exit-on-eof ends only once every event is confirmed: the signed confirmations were obeyed.
  ASSERT_EQ(run_agent(0, 20), 0);
  auto s = stats();
  EXPECT_EQ(s["events_accepted"], 20) << s.dump();
  EXPECT_GE(s["batches_signed"].get<int>(), 1);
  EXPECT_EQ(s["batches_signed"], s["batches_accepted"]);
  auto agent = api(std::string("/api/v1/agents/") + kPost + "/" + kAgent);
  EXPECT_EQ(agent["key_id"], agent_key.key_id()) << agent.dump();
}

TEST_F(Trust, BatchesForgedOnAnEnrolledAgentsTopicAreRefusedCountedAndLeaveTheBoardAlone) {
  ASSERT_EQ(enrol(token_for()).status, 0);
  ASSERT_EQ(run_agent(0, 5), 0);  // level 2: goal 7 stays green
  auto goal_status = [&] { return api("/api/v1/goals/7")["status"]; };
  const auto goal_before = goal_status();
  ASSERT_TRUE(goal_before.is_string());
  const auto accepted_before = stats()["events_accepted"].get<int>();

  MqttProbe evil(broker.uri(), "evil");
  auto batch = [](std::uint64_t seq) {
    EventBatch b{kAgent, kPost, now_utc_ms(), {}};
    b.events.push_back(
        IndicatorEvent{seq, now_utc_ms(), "terrorism_threat_level", ValueKind::Level, 5, "forged", "", {}});
    return b;
  };
  evil.publish(topic_of(topics::Channel::Events), encode_batch(batch(6)));  // unsigned
  auto stranger = SigningKey::generate();
  evil.publish(topic_of(topics::Channel::Events), encode_batch(batch(7), &stranger));  // someone else's key
  auto agent_key = SigningKey::load(key_file);  // the agent's own key, altered in transit
  auto signed_payload = encode_batch(batch(8), &agent_key);
  auto note = std::search(signed_payload.begin(), signed_payload.end(), std::begin("forged"), std::end("forged") - 1);
  ASSERT_NE(note, signed_payload.end());
  *note = 'F';  // the note's text: a valid buffer, changed content
  evil.publish(topic_of(topics::Channel::Events), signed_payload);
  // A replay of a genuine batch under a forged seq, the signature copied over.
  auto genuine = encode_batch(batch(9), &agent_key);
  auto replay = encode_batch(batch(90), &agent_key);
  BatchView g, rp;
  ASSERT_EQ(decode_batch({genuine.data(), genuine.size()}, g), DecodeError::None);
  ASSERT_EQ(decode_batch({replay.data(), replay.size()}, rp), DecodeError::None);
  std::copy_n(genuine.begin() + static_cast<std::ptrdiff_t>(g.signature_offset), 64,
              replay.begin() + static_cast<std::ptrdiff_t>(rp.signature_offset));
  evil.publish(topic_of(topics::Channel::Events), replay);
  // A forged death (not signed): the agent stays online.
  AgentState death;
  death.agent_id = kAgent;
  death.post_id = kPost;
  death.online = false;
  death.at_ms = now_utc_ms();
  evil.publish(topic_of(topics::Channel::State), encode_agent_state(death));

  ASSERT_TRUE(wait_until(
      [&] {
        auto s = stats();
        return s.is_object() && s["batches_refused_signature"]["bad_signature"] == 2 &&
               s["batches_refused_signature"]["unsigned_refused"] == 1 &&
               s["batches_refused_signature"]["unknown_key"] == 1 &&
               s["agent_states_refused_signature"]["unsigned_refused"] == 1;
      },
      std::chrono::seconds(10)))
      << stats().dump();
  EXPECT_EQ(stats()["events_accepted"].get<int>(), accepted_before);
  EXPECT_EQ(goal_status(), goal_before);
  auto track = api(std::string("/api/v1/agents/") + kPost + "/" + kAgent)["events"];
  EXPECT_EQ(track["highest_seq"], 5) << track.dump();
  // Repeated attempts raise the post's topic_mismatch alarm, naming what was refused.
  ASSERT_TRUE(wait_until(
      [&] {
        auto alarms = api("/api/v1/alarms")["alarms"];
        for (const auto& a : alarms)
          if (a["kind"] == "topic_mismatch" && a["post"] == kPost) return true;
        return false;
      },
      std::chrono::seconds(10)))
      << api("/api/v1/alarms").dump();
  EXPECT_NE(aggregator->process().log().find("signature: bad_signature (key " + agent_key.key_id() + ")"),
            std::string::npos);
  // The genuine agent goes on as before.
  ASSERT_EQ(run_agent(5, 5), 0);
  EXPECT_EQ(stats()["events_accepted"].get<int>(), accepted_before + 5);
}

// The one that matters most: a forged confirmation must not make an agent delete its spool.
TEST_F(Trust, AForgedConfirmationDoesNotReleaseAnEnrolledAgentsSpool) {
  ASSERT_EQ(enrol(token_for()).status, 0);
  auto aggregator_key = SigningKey::load(dir.path() / "aggregator-data" / "keys" / "aggregator.key");
  aggregator.reset();  // no aggregator: the only confirmations are the test's
  ChildProcess agent({(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config", config_file.string()},
                     dir.path() / "agent.log", true);
  ASSERT_TRUE(agent.write_stdin(event_lines(0, 10)));
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = status();
        return s.is_object() && s["sent_through_seq"] == 10;
      },
      std::chrono::seconds(15)))
      << status().dump() << agent.log();

  MqttProbe evil(broker.uri(), "evil");
  auto confirm = [](std::uint64_t through) { return DeliveryConfirm{kAgent, kPost, through, now_utc_ms(), 0}; };
  evil.publish(topic_of(topics::Channel::Confirm), encode_delivery_confirm(confirm(10)));  // unsigned
  auto stranger = SigningKey::generate();
  evil.publish(topic_of(topics::Channel::Confirm), encode_delivery_confirm(confirm(10), &stranger));
  auto marked = confirm(3);
  marked.at_ms = 0x0123456789abcdefLL;  // a value to find in the buffer and change
  auto altered = encode_delivery_confirm(marked, &aggregator_key);
  const std::uint8_t at_ms_low_byte = 0xef;
  auto at = std::find(altered.begin(), altered.end(), at_ms_low_byte);
  ASSERT_NE(at, altered.end());
  *at ^= 0x01;  // the time: a valid buffer, changed content
  evil.publish(topic_of(topics::Channel::Confirm), altered);
  ASSERT_TRUE(wait_until([&] { return status().value("confirm_rejected", 0) >= 3; }, std::chrono::seconds(10)))
      << status().dump() << agent.log();
  EXPECT_EQ(status()["spool_events"], 10);
  EXPECT_EQ(status()["events_confirmed"], 0);
  EXPECT_NE(agent.log().find("it is unsigned, and this agent is enrolled; nothing is released"), std::string::npos)
      << agent.log();
  EXPECT_NE(agent.log().find("which is not the aggregator's"), std::string::npos);
  EXPECT_NE(agent.log().find("its signature does not verify"), std::string::npos);

  // The aggregator's own signature is obeyed.
  evil.publish(topic_of(topics::Channel::Confirm), encode_delivery_confirm(confirm(4), &aggregator_key));
  ASSERT_TRUE(wait_until([&] { return status()["events_confirmed"] == 4; }, std::chrono::seconds(10)))
      << status().dump();
  EXPECT_EQ(status()["spool_events"], 6);
  agent.signal(SIGTERM);
  agent.wait(std::chrono::seconds(10));
}

TEST_F(Trust, ATokenWorksOnceAndASecondEnrolmentWaitsForARevocation) {
  auto token = token_for();
  ASSERT_EQ(enrol(token).status, 0);
  auto first_key = SigningKey::load(key_file).key_id();

  // The same token from another board (its own key): refused.
  fs::path other_config = dir.path() / "other.json";
  write_config(kAgent, other_config, dir.path() / "other.key", dir.path() / "other.pub", dir.path() / "other-spool");
  auto reused = enrol(token, other_config);
  EXPECT_EQ(reused.status, 1) << reused.output;
  EXPECT_NE(reused.output.find("the token was used already"), std::string::npos) << reused.output;
  EXPECT_FALSE(fs::exists(dir.path() / "other.pub"));

  // A new token for the same id, while the first key is in force: refused until revoked.
  auto second = enrol(token_for(), other_config);
  EXPECT_EQ(second.status, 1);
  EXPECT_NE(second.output.find("revoke that key first"), std::string::npos) << second.output;

  // Revoking needs an operator.
  auto h = bearer(TokensFile::kRead);
  auto path = std::string("/api/v1/agent-keys/") + kPost + "/" + kAgent + "/revoke";
  EXPECT_EQ(http_call(aggregator->port(), feedhttp::verb::post, path, h).status, 403);
  auto revoked = http_call(aggregator->port(), feedhttp::verb::post, path, bearer(TokensFile::kOperator));
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(revoked.json()["key_id"], first_key);
  EXPECT_EQ(http_call(aggregator->port(), feedhttp::verb::post, path, bearer(TokensFile::kOperator)).status, 404);

  auto again = enrol(token_for(), other_config);
  ASSERT_EQ(again.status, 0) << again.output;
  // The revoked key's batches are refused from now on.
  MqttProbe old_board(broker.uri(), "old-board");
  EventBatch b{kAgent, kPost, now_utc_ms(), {}};
  b.events.push_back(IndicatorEvent{1, now_utc_ms(), "terrorism_threat_level", ValueKind::Level, 5, "", "", {}});
  auto old_key = SigningKey::load(key_file);
  old_board.publish(topic_of(topics::Channel::Events), encode_batch(b, &old_key));
  EXPECT_TRUE(
      wait_until([&] { return stats()["batches_refused_signature"]["revoked_key"] == 1; }, std::chrono::seconds(10)))
      << stats().dump();
  // The keys survive a restart of the aggregator.
  aggregator.reset();
  aggregator.emplace(broker, dir, std::vector<std::string>{"--tokens-file", tokens.path.string()});
  auto keys = api("/api/v1/agent-keys")["keys"];
  ASSERT_EQ(keys.size(), 2u) << keys.dump();
  int in_force = 0;
  for (const auto& k : keys) in_force += k["state"] == "in_force";
  EXPECT_EQ(in_force, 1);
}

TEST_F(Trust, AMalformedOrUnknownTokenIsRefusedAtTheBoardOrByTheAggregator) {
  auto garbage = enrol("not-a-token");
  EXPECT_EQ(garbage.status, 2) << garbage.output;
  EXPECT_NE(garbage.output.find("starts with 'pwt1.'"), std::string::npos) << garbage.output;
  // Well formed, but issued by no one here.
  EnrolmentToken forged{"0123456789abcdef", {}, SigningKey::generate().public_key()};
  auto unknown = enrol(format_enrolment_token(forged), {}, 3);
  EXPECT_EQ(unknown.status, 3) << unknown.output;  // the answer is signed by this aggregator, not the token's
  EXPECT_NE(unknown.output.find("not signed by the aggregator the token names"), std::string::npos) << unknown.output;
  EXPECT_EQ(api("/api/v1/agent-keys")["keys"].size(), 0u);
  EXPECT_EQ(stats()["enrolments_refused"], 1);
  // A token for a post the catalogue does not know is not issued.
  auto h = bearer(TokensFile::kOperator);
  h["Content-Type"] = "application/json";
  auto r = http_call(aggregator->port(), feedhttp::verb::post, "/api/v1/enrolment-tokens", h,
                     json{{"post", "atlantis"}, {"agent", "a"}}.dump());
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(issue(kAgent, TokensFile::kRead).status, 403);
}

// The retained message on the agent's state topic: its last birth, or the death the broker
// published for it.
std::optional<AgentState> retained_state(const std::string& broker_uri) {
  MqttProbe c(broker_uri, "trust-test-state", ProbeOptions().subscribe(topic_of(topics::Channel::State)));
  std::optional<AgentState> out;
  if (c.wait_for([](const auto& messages) { return !messages.empty(); }, std::chrono::seconds(5)))
    out = MqttProbe::decode_state(c.messages().front().payload);
  return out;
}

// The agent's key rotated while it sends a steady stream: every event is accepted once and
// confirmed, nothing is refused (the old key stays valid while the agent moves to the new
// one), the agent takes up the new key without a restart, and the last will it leaves with the
// broker (published on a SIGKILL) is signed with the new key.
TEST_F(Trust, KeyRotationUnderLoadLosesAndRefusesNothing) {
  ASSERT_EQ(enrol(token_for()).status, 0);
  const auto old_key = SigningKey::load(key_file).key_id();
  ChildProcess agent({(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config", config_file.string()},
                     dir.path() / "agent.log", true);
  // About 1 000 events a second until the agent has moved to the new key and sent under it.
  SteadyWriter writer(agent, 1000);
  ASSERT_TRUE(wait_until([&] { return confirmed() >= 200; }, std::chrono::seconds(30)))
      << status().dump() << agent.log();
  auto r = rotate_key();
  ASSERT_EQ(r.status, 0) << r.output << agent.log();
  EXPECT_NE(r.output.find("rotated the key of bamako/gw-1 from " + old_key), std::string::npos) << r.output;
  const auto new_key = SigningKey::load(key_file).key_id();
  EXPECT_NE(new_key, old_key);
  EXPECT_FALSE(fs::exists(fs::path(key_file.string() + ".next")));
  // The running agent takes the new key up and renews its last will.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto log = agent.log();
        return log.find("now signing with key " + new_key + " (was " + old_key + ")") != std::string::npos &&
               log.find("reconnecting once so the last will is signed with the new key") != std::string::npos;
      },
      std::chrono::seconds(20)))
      << agent.log();
  const int total = writer.write_more_then_stop(400);
  EXPECT_FALSE(writer.ran_out()) << "the writer ran out before the agent moved to the new key";
  ASSERT_TRUE(wait_until([&] { return confirmed() == total; }, std::chrono::seconds(60)))
      << total << " written; " << status().dump() << agent.log();

  auto s = stats();
  EXPECT_EQ(s["events_accepted"], total) << s.dump();
  EXPECT_EQ(s["batches_signed"], s["batches_accepted"]) << s.dump();
  EXPECT_EQ(s["keys_rotated"], 1);
  for (const auto& [reason, n] : s["batches_refused_signature"].items()) EXPECT_EQ(n, 0) << reason;
  for (const auto& [reason, n] : s["agent_states_refused_signature"].items()) EXPECT_EQ(n, 0) << reason;
  auto keys = api("/api/v1/agent-keys")["keys"];
  ASSERT_EQ(keys.size(), 2u) << keys.dump();
  for (const auto& k : keys) {
    if (k["key_id"] == old_key) {
      EXPECT_EQ(k["state"], "retiring") << k.dump();
      EXPECT_GT(k["retires_at_ms"].get<std::int64_t>(), now_utc_ms());
    } else {
      EXPECT_EQ(k["key_id"], new_key);
      EXPECT_EQ(k["state"], "in_force");
      EXPECT_EQ(k["rotated_from"], old_key);
    }
  }
  EXPECT_EQ(api(std::string("/api/v1/agents/") + kPost + "/" + kAgent)["key_id"], new_key);

  // The will the broker holds was renewed by the reconnect: signed with the new key.
  agent.signal(SIGKILL);
  agent.wait(std::chrono::seconds(10));
  std::optional<AgentState> death;
  ASSERT_TRUE(wait_until(
      [&] {
        death = retained_state(broker.uri());
        return death && !death->online;
      },
      std::chrono::seconds(20)))
      << "no death on the state topic";
  EXPECT_EQ(death->key_id, new_key);
  const auto after = stats();  // named: a range-for over a temporary's member would dangle
  for (const auto& [reason, n] : after["agent_states_refused_signature"].items()) EXPECT_EQ(n, 0) << reason;

  // The next rotation starts from the key now in force.
  auto again = rotate_key();
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_EQ(stats()["keys_rotated"], 2);
}

// Refused rotations: an agent that is not enrolled is told so at the board (exit 2), and one
// whose key an operator revoked is refused by the aggregator (exit 1) and keeps its key.
TEST_F(Trust, ARotationNeedsAnEnrolledAgentWhoseKeyIsInForce) {
  auto not_enrolled = rotate_key();
  EXPECT_EQ(not_enrolled.status, 2) << not_enrolled.output;
  EXPECT_NE(not_enrolled.output.find("not enrolled"), std::string::npos) << not_enrolled.output;

  ASSERT_EQ(enrol(token_for()).status, 0);
  const auto key = SigningKey::load(key_file).key_id();
  auto revoked =
      http_call(aggregator->port(), feedhttp::verb::post,
                std::string("/api/v1/agent-keys/") + kPost + "/" + kAgent + "/revoke", bearer(TokensFile::kOperator));
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  auto refused = rotate_key();
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("no key in force"), std::string::npos) << refused.output;
  EXPECT_EQ(SigningKey::load(key_file).key_id(), key);
  EXPECT_FALSE(fs::exists(fs::path(key_file.string() + ".next")));
  EXPECT_EQ(stats()["keys_rotated"], 0);
}

// The aggregator answers "accepted" only once its store holds the key: with the store locked by
// another writer (as a stalled disk would hold it), an enrolment gets no answer and the agent
// keeps its key for the next try, which is accepted once the store has committed. An answer
// before the commit would leave an agent signing with a key a crashed aggregator never kept.
TEST_F(Trust, AnEnrolmentIsAcceptedOnlyOnceTheStoreHoldsTheKey) {
  auto token = token_for();
  const auto db = dir.path() / "aggregator-data" / "postwatch.sqlite";
  ASSERT_TRUE(fs::exists(db));
  ChildProcess lock({"sqlite3", db.string()}, dir.path() / "sqlite-lock.log", true);
  // The aggregator's writer may hold the lock for a moment: wait for it (.timeout), and stop at
  // an error (.bail) so 'locked' is printed only once the lock is ours.
  ASSERT_TRUE(lock.write_stdin(".bail on\n.timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n"));
  ASSERT_TRUE(wait_until([&] { return lock.log().find("locked") != std::string::npos; }, std::chrono::seconds(10)))
      << lock.log();
  auto held = enrol(token, {}, 3);
  EXPECT_EQ(held.status, 3) << held.output;
  EXPECT_NE(held.output.find("no answer from the aggregator"), std::string::npos) << held.output;
  EXPECT_FALSE(fs::exists(aggregator_key_file));
  const auto key = SigningKey::load(key_file).key_id();

  ASSERT_TRUE(lock.write_stdin("COMMIT;\n.quit\n"));
  lock.close_stdin();
  lock.wait(std::chrono::seconds(10));
  auto again = enrol(token);  // the same key again: the same answer, now that the key is stored
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("with key " + key), std::string::npos) << again.output;
  EXPECT_EQ(stats()["enrolments_accepted"], 2);
  auto rows = run_shell("sqlite3 " + shell_quoted(db.string()) +
                        " \"SELECT count(*) FROM trust_records WHERE key LIKE 'key/bamako/gw-1/" + key + "'\"");
  EXPECT_EQ(rows.output, "1\n") << rows.output;
}
