// The aggregator's own key rotation (docs/security.md, "The aggregator's key") with the real
// postwatch-agent, a real Mosquitto and the real aggregator: the next key reaches the agent in
// its confirmations, the operator switches once the agent reports trusting it, the agent drops
// the retired key, and no event is lost or refused on the way.
#include "postwatch/clock.hpp"
#include "support/mqtt_probe.hpp"
#include "trust_test_support.hpp"

#include <gtest/gtest.h>

using namespace postwatch;
using namespace postwatch::test;

namespace {

class AggregatorKey : public Trust {
 protected:
  fs::path keys_dir = dir.path() / "aggregator-data" / "keys";

  HttpReply post(const std::string& target, const std::string& token = TokensFile::kOperator) {
    return http_call(aggregator->port(), feedhttp::verb::post, target, bearer(token), "");
  }
  json key_status() { return api("/api/v1/aggregator-key"); }
};

}  // namespace

// The whole rotation while the agent sends about 1 000 events a second: prepare, wait for the
// agent to report the next key, switch (refused while another enrolled agent has not reported
// it, then forced), and the agent stops trusting the old key. Every event is accepted once and
// confirmed, nothing is refused, and afterwards a confirmation signed with the retired key
// releases nothing while one signed with the new key does.
TEST_F(AggregatorKey, RotatesUnderLoadAndTheAgentDropsTheRetiredKey) {
  ASSERT_EQ(enrol(token_for()).status, 0);
  // A second enrolled agent that never runs: it cannot report the next key.
  const auto quiet_config = dir.path() / "quiet.json";
  write_config("gw-2", quiet_config, dir.path() / "quiet.key", dir.path() / "quiet-aggregator.pub",
               dir.path() / "quiet-spool");
  ASSERT_EQ(enrol(token_for("gw-2"), quiet_config).status, 0);

  const auto before = key_status();
  const std::string old_id = before["key_id"];
  EXPECT_TRUE(before["next_key_id"].is_null()) << before.dump();
  auto r = post("/api/v1/aggregator-key/switch");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("no next key is prepared"), std::string::npos) << r.body;
  const auto old_signer = SigningKey::load(keys_dir / "aggregator.key");  // to forge with later

  ChildProcess agent({(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config", config_file.string()},
                     dir.path() / "agent.log", true);
  SteadyWriter writer(agent, 1500);
  ASSERT_TRUE(wait_until([&] { return confirmed() >= 200; }, std::chrono::seconds(30)))
      << status().dump() << agent.log();

  EXPECT_EQ(post("/api/v1/aggregator-key/next", TokensFile::kRead).status, 403);
  r = post("/api/v1/aggregator-key/next");
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string next_id = r.json()["next_key_id"];
  EXPECT_NE(next_id, old_id);
  EXPECT_EQ(post("/api/v1/aggregator-key/next").status, 200) << "prepared once";
  EXPECT_EQ(key_status()["next_key_id"], next_id);

  // The agent trusts it from a confirmation, writes it down, and its heartbeat says so.
  ASSERT_TRUE(
      wait_until([&] { return key_status()["agents"].value("trusting_next", 0) == 1; }, std::chrono::seconds(20)))
      << key_status().dump() << agent.log();
  EXPECT_NE(agent.log().find("trusting its next key " + next_id), std::string::npos) << agent.log();
  EXPECT_EQ(read_public_keys(aggregator_key_file).size(), 2u);
  auto st = key_status();
  EXPECT_FALSE(st["ready_to_switch"].get<bool>()) << st.dump();
  EXPECT_EQ(st["agents"]["not_reported"], 1) << st.dump();
  EXPECT_EQ(st["agents"]["not_reported_agents"], json::array({"bamako/gw-2"}));

  r = post("/api/v1/aggregator-key/switch");
  ASSERT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("not every enrolled agent"), std::string::npos) << r.body;
  EXPECT_EQ(key_status()["key_id"], old_id) << "a refused switch changes nothing";
  r = post("/api/v1/aggregator-key/switch?force=true");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["key_id"], next_id);
  EXPECT_EQ(r.json()["switched_from"], old_id);
  EXPECT_EQ(r.json()["retired_key_ids"], json::array({old_id}));
  EXPECT_TRUE(r.json()["forced"].get<bool>());

  // Confirmations now signed by the new key tell the agent to drop the old one.
  ASSERT_TRUE(wait_until([&] { return agent.log().find("no longer trusting " + old_id) != std::string::npos; },
                         std::chrono::seconds(20)))
      << agent.log();
  const int total = writer.write_more_then_stop(400);
  EXPECT_FALSE(writer.ran_out()) << "the writer ran out before the rotation finished";
  ASSERT_TRUE(wait_until([&] { return confirmed() == total; }, std::chrono::seconds(60)))
      << total << " written; " << status().dump() << agent.log();
  auto keys = read_public_keys(aggregator_key_file);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(key_id_of(keys.front()), next_id);
  ASSERT_TRUE(
      wait_until([&] { return key_status()["agents"]["still_trusting_retired"] == 0; }, std::chrono::seconds(10)))
      << key_status().dump();

  auto s = stats();
  EXPECT_EQ(s["events_accepted"], total) << s.dump();
  EXPECT_EQ(s["aggregator_key_switches"], 1);
  for (const auto& [reason, n] : s["batches_refused_signature"].items()) EXPECT_EQ(n, 0) << reason;
  for (const auto& [reason, n] : s["agent_states_refused_signature"].items()) EXPECT_EQ(n, 0) << reason;
  EXPECT_EQ(status().value("confirm_rejected", -1), 0) << status().dump();

  // The aggregator restarts with the new key and remembers the retired one.
  aggregator.reset();
  aggregator.emplace(broker, dir, std::vector<std::string>{"--tokens-file", tokens.path.string()});
  auto again = key_status();
  EXPECT_EQ(again["key_id"], next_id) << again.dump();
  EXPECT_EQ(again["retired_key_ids"], json::array({old_id}));
  EXPECT_TRUE(again["next_key_id"].is_null());
  aggregator.reset();  // from here on the only confirmations are the test's

  // A confirmation signed by the retired key is no longer obeyed; one by the new key is.
  ASSERT_TRUE(agent.write_stdin(event_lines(0, 10)));
  const std::uint64_t through = static_cast<std::uint64_t>(total) + 10;
  ASSERT_TRUE(wait_until([&] { return status()["sent_through_seq"] == through; }, std::chrono::seconds(15)))
      << status().dump();
  MqttProbe evil(broker.uri(), "evil");
  auto confirm = [&] { return DeliveryConfirm{kAgent, kPost, through, now_utc_ms(), 0}; };
  evil.publish(topic_of(topics::Channel::Confirm), encode_delivery_confirm(confirm(), &old_signer));
  ASSERT_TRUE(wait_until([&] { return status().value("confirm_rejected", 0) >= 1; }, std::chrono::seconds(10)))
      << status().dump() << agent.log();
  EXPECT_EQ(confirmed(), total);
  EXPECT_EQ(status()["spool_events"], 10);
  const auto new_signer = SigningKey::load(keys_dir / "aggregator.key");
  EXPECT_EQ(new_signer.key_id(), next_id);
  evil.publish(topic_of(topics::Channel::Confirm), encode_delivery_confirm(confirm(), &new_signer));
  ASSERT_TRUE(wait_until([&] { return confirmed() == total + 10; }, std::chrono::seconds(10))) << status().dump();
  agent.signal(SIGTERM);
  agent.wait(std::chrono::seconds(10));
}

// A confirmation that names a next key but is signed by a key the agent does not trust adds
// nothing: a broker cannot slip its own key in. The aggregator's own notice, sent after it,
// is taken, so the forged one had its chance to be applied first.
TEST_F(AggregatorKey, ANextKeyInAForgedConfirmationIsNotTrusted) {
  ASSERT_EQ(enrol(token_for()).status, 0);
  const auto real = SigningKey::load(keys_dir / "aggregator.key");
  aggregator.reset();  // the only confirmations are the test's
  ChildProcess agent({(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config", config_file.string()},
                     dir.path() / "agent.log", true);
  ASSERT_TRUE(agent.write_stdin(event_lines(0, 5)));
  ASSERT_TRUE(wait_until([&] { return status()["sent_through_seq"] == 5; }, std::chrono::seconds(15)))
      << status().dump() << agent.log();
  auto forger = SigningKey::generate(), real_next = SigningKey::generate();
  auto notice = [](const SigningKey& next) {
    DeliveryConfirm c{kAgent, kPost, 0, now_utc_ms(), 0};
    c.next_key.assign(next.public_key().begin(), next.public_key().end());
    return c;
  };
  MqttProbe evil(broker.uri(), "evil");
  evil.publish(topic_of(topics::Channel::Confirm), encode_delivery_confirm(notice(forger), &forger));
  ASSERT_TRUE(wait_until([&] { return status().value("confirm_rejected", 0) >= 1; }, std::chrono::seconds(10)))
      << status().dump() << agent.log();
  evil.publish(topic_of(topics::Channel::Confirm), encode_delivery_confirm(notice(real_next), &real));
  ASSERT_TRUE(
      wait_until([&] { return agent.log().find("trusting its next key " + real_next.key_id()) != std::string::npos; },
                 std::chrono::seconds(10)))
      << agent.log();
  auto keys = read_public_keys(aggregator_key_file);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], real.public_key());
  EXPECT_EQ(keys[1], real_next.public_key());
  agent.signal(SIGTERM);
  agent.wait(std::chrono::seconds(10));
}

// An agent with nothing to send has no confirmation coming: the aggregator sends it its last
// one again, carrying the notice, when its heartbeat says it lacks the next key, and again
// after the switch while it still trusts the retired one. With every enrolled agent reporting
// the next key, the switch needs no force.
TEST_F(AggregatorKey, AQuietAgentHearsOfTheRotationFromItsLastConfirmation) {
  ASSERT_EQ(enrol(token_for()).status, 0);
  const std::string old_id = key_status()["key_id"];
  ChildProcess agent({(binary_dir() / "agent" / "postwatch-agent").string(), "run", "--config", config_file.string()},
                     dir.path() / "agent.log", true);
  ASSERT_TRUE(agent.write_stdin(event_lines(0, 5)));
  ASSERT_TRUE(wait_until([&] { return confirmed() == 5; }, std::chrono::seconds(15))) << status().dump();
  const auto published = stats()["confirms_published"];

  auto r = post("/api/v1/aggregator-key/next");
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string next_id = r.json()["next_key_id"];
  ASSERT_TRUE(wait_until([&] { return key_status()["ready_to_switch"] == true; }, std::chrono::seconds(20)))
      << key_status().dump() << agent.log();
  EXPECT_GE(stats()["confirm_key_notices"].get<int>(), 1);
  EXPECT_EQ(stats()["confirms_published"], published) << "no new watermark: the notice rode on the last one";

  r = post("/api/v1/aggregator-key/switch");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.json()["forced"].get<bool>());
  ASSERT_TRUE(
      wait_until([&] { return key_status()["agents"]["still_trusting_retired"] == 0; }, std::chrono::seconds(20)))
      << key_status().dump() << agent.log();
  EXPECT_NE(agent.log().find("no longer trusting " + old_id), std::string::npos) << agent.log();
  EXPECT_EQ(key_status()["agents"]["trusting_other_keys"], 0);
  auto keys = read_public_keys(aggregator_key_file);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(key_id_of(keys.front()), next_id);
  // The board's engineer sees the same in `postwatch-agent status`.
  ASSERT_TRUE(
      wait_until([&] { return status()["aggregator_key_ids"] == json::array({next_id}); }, std::chrono::seconds(10)))
      << status().dump();
  auto shown = run_shell(shell_quoted((binary_dir() / "agent" / "postwatch-agent").string()) + " status --config " +
                         shell_quoted(config_file.string()) + " 2>&1");
  EXPECT_NE(shown.output.find("trust      obeys confirmations signed by aggregator key(s) " + next_id),
            std::string::npos)
      << shown.output;
  // And it goes on: new events are confirmed under the new key.
  ASSERT_TRUE(agent.write_stdin(event_lines(5, 5)));
  ASSERT_TRUE(wait_until([&] { return confirmed() == 10; }, std::chrono::seconds(15))) << status().dump();
  EXPECT_EQ(status().value("confirm_rejected", -1), 0);
  agent.signal(SIGTERM);
  agent.wait(std::chrono::seconds(10));
}
