#include "postwatch/agent/enrolment_client.hpp"

#include "postwatch/agent/identity_key.hpp"
#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/enrolment.hpp"
#include "postwatch/mqtt_options.hpp"
#include "postwatch/secret_file.hpp"
#include "postwatch/topics.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>

namespace postwatch::agent {

namespace {

mqtt::connect_options connect_options(const AgentConfig& config, const std::string& password) {
  auto b = mqtt::connect_options_builder()
               .clean_session(true)
               .connect_timeout(std::chrono::seconds(10))
               .mqtt_version(MQTTVERSION_3_1_1);
  set_mqtt_login(b, config.username, password);
  if (config.uses_tls())
    set_mqtt_tls(b, {.ca_file = config.tls.ca_file,
                     .cert_file = config.tls.cert_file,
                     .key_file = config.tls.key_file,
                     .verify_hostname = config.tls.verify_hostname});
  return b.finalize();
}

// After a rename: the directory entry itself reaches the disk (a power cut keeps the new key).
void sync_directory(const std::filesystem::path& dir) {
  if (int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// One request on the agent's enrol topic and the aggregator's answer on its enrolled topic,
// accepted only when signed by one of `trusted` (the aggregator's keys) and answering this
// request (`ours`). Exit codes as EnrolOutcome; `reply` is set on 0.
struct Exchange {
  EnrolOutcome failed;  // exit_code 0: `reply` holds the answer
  EnrolReply reply;
};

Exchange exchange(const AgentConfig& config, const Post& post, const std::vector<std::uint8_t>& payload,
                  const std::vector<PublicKey>& trusted, const std::string& trusted_name,
                  const std::function<bool(const EnrolReply&)>& ours, std::chrono::seconds timeout,
                  const std::string& what, spdlog::logger& log) {
  const auto request_topic = topics::agent_topic(post.region, config.post_id, config.agent_id, topics::Channel::Enrol);
  const auto reply_topic = topics::agent_topic(post.region, config.post_id, config.agent_id, topics::Channel::Enrolled);
  std::mutex mu;
  std::condition_variable cv;
  std::optional<EnrolReply> reply;
  std::string ignored;  // replies that were not the aggregator's answer to this request
  mqtt::async_client client(config.broker_uri, "postwatch-enrol-" + config.post_id + "-" + config.agent_id,
                            mqtt::create_options(MQTTVERSION_3_1_1));
  client.set_message_callback([&](const mqtt::const_message_ptr& m) {
    const auto& p = m->get_payload();
    std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(p.data()), p.size());
    EnrolReply r;
    std::lock_guard lk(mu);
    if (decode_enrol_reply(bytes, r) != DecodeError::None) {
      ignored = "an unreadable answer";
    } else if (std::none_of(trusted.begin(), trusted.end(), [&](const PublicKey& k) {
                 return r.key_id == key_id_of(k) && verify_payload(bytes, r.signature_offset, k);
               })) {
      ignored = "an answer not signed by " + trusted_name + " (key " + key_id_of(trusted.front()) + ")";
    } else if (r.agent_id != config.agent_id || r.post_id != config.post_id || !ours(r)) {
      ignored = "an answer to another request";
    } else {
      reply = r;
    }
    cv.notify_all();
  });
  std::string password = config.password_file.empty() ? "" : read_secret_file(config.password_file);
  try {
    client.connect(connect_options(config, password))->wait_for(std::chrono::seconds(15));
    if (!client.is_connected()) return {{1, "cannot connect to " + config.broker_uri}, {}};
    client.subscribe(reply_topic, 1)->wait_for(std::chrono::seconds(10));
    client.publish(request_topic, payload.data(), payload.size(), 1, false)->wait_for(std::chrono::seconds(10));
  } catch (const mqtt::exception& e) {
    return {
        {1, "cannot reach the broker " + config.broker_uri + ": " + e.what() +
                " (the broker's ACL must let this agent publish " + request_topic + " and read " + reply_topic + ")"},
        {}};
  }
  log.info("{}: sent the request for {}/{} on {}; waiting up to {} s", what, config.post_id, config.agent_id,
           request_topic, timeout.count());
  std::unique_lock lk(mu);
  cv.wait_for(lk, timeout, [&] { return reply.has_value(); });
  std::optional<EnrolReply> got = reply;
  std::string noise = ignored;
  lk.unlock();
  try {
    client.disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
  if (!got)
    return {
        {3, "no answer from the aggregator within " + std::to_string(timeout.count()) + " s" +
                (noise.empty() ? "" : " (ignored " + noise + ")") + "; is it running and connected to this broker?"},
        {}};
  return {{0, ""}, *got};
}

}  // namespace

EnrolOutcome enrol_agent(const AgentConfig& config, const IndicatorCatalogue& catalogue, const std::string& token_text,
                         std::chrono::seconds timeout, spdlog::logger& log) {
  std::string why;
  auto token = parse_enrolment_token(token_text, why);
  if (!token) return {2, why};
  const auto& id = config.identity;
  if (id.key_file.empty() || id.aggregator_key_file.empty())
    return {2, "identity.key_file and identity.aggregator_key_file must name where the keys go"};
  const Post* post = catalogue.find_post(config.post_id);
  if (!post) return {2, "post_id '" + config.post_id + "' is not a post in the catalogue"};

  bool created = false;
  auto key = load_or_create_identity_key(id, id.key_file, created);
  log.info("{} key {} in {}", created ? "made" : "reusing", key.key_id(), id.key_file.string());

  auto ex = exchange(
      config, *post, enrolment_request(*token, config.post_id, config.agent_id, key, now_utc_ms()),
      {token->aggregator_key}, "the aggregator the token names",
      [&](const EnrolReply& r) { return r.token_id == token->id; }, timeout, "enrolment with token " + token->id, log);
  if (ex.failed.exit_code != 0) {
    ex.failed.message += "; the key stays in " + id.key_file.string() + " for the next try";
    return ex.failed;
  }
  if (!ex.reply.accepted) return {1, "the aggregator refused the enrolment: " + ex.reply.reason};
  write_public_keys(id.aggregator_key_file, {token->aggregator_key});
  return {0, "enrolled " + config.post_id + "/" + config.agent_id + " with key " + key.key_id() +
                 "; the aggregator's key " + key_id_of(token->aggregator_key) + " is in " +
                 id.aggregator_key_file.string() + ". A running agent takes both up within a few seconds"};
}

std::filesystem::path pending_key_file(const AgentConfig& config) {
  auto next = config.identity.key_file;
  next += ".next";
  return next;
}

EnrolOutcome rotate_agent_key(const AgentConfig& config, const IndicatorCatalogue& catalogue,
                              std::chrono::seconds timeout, spdlog::logger& log) {
  const auto& id = config.identity;
  std::error_code ec;
  if (id.key_file.empty() || id.aggregator_key_file.empty() || !std::filesystem::exists(id.key_file, ec) ||
      !std::filesystem::exists(id.aggregator_key_file, ec))
    return {2,
            "this agent is not enrolled (identity.key_file and identity.aggregator_key_file must both exist); "
            "enrol it with a token first (postwatch-agent enrol)"};
  const Post* post = catalogue.find_post(config.post_id);
  if (!post) return {2, "post_id '" + config.post_id + "' is not a post in the catalogue"};
  SigningKey current = load_identity_key(id, id.key_file);
  const auto trusted = read_public_keys(id.aggregator_key_file);

  // The new key waits beside the old one until the aggregator accepted it: a run cut short
  // (no answer, a crash) is finished by the next run with the same key.
  const auto next_file = pending_key_file(config);
  std::optional<SigningKey> next;
  if (std::filesystem::exists(next_file, ec)) {
    next = load_identity_key(id, next_file);
    log.info("finishing the rotation an earlier run began: new key {} in {}", next->key_id(), next_file.string());
  } else {
    next = create_identity_key(id, next_file);
    log.info("made the new key {} in {}", next->key_id(), next_file.string());
  }

  EnrolRequest req;
  req.agent_id = config.agent_id;
  req.post_id = config.post_id;
  req.public_key = next->public_key();
  req.endorsed_by = current.key_id();
  req.endorsement = endorse_rotation(current, config.post_id, config.agent_id, next->public_key());
  req.at_ms = now_utc_ms();
  auto ex = exchange(
      config, *post, encode_enrol_request(req, *next), trusted,
      "the aggregator (" + id.aggregator_key_file.string() + ")",
      [&](const EnrolReply& r) { return r.token_id.empty() && (!r.accepted || r.agent_key_id == next->key_id()); },
      timeout, "key rotation from " + current.key_id() + " to " + next->key_id(), log);
  if (ex.failed.exit_code != 0) {
    ex.failed.message += "; the new key waits in " + next_file.string() + " and the next run finishes the rotation";
    return ex.failed;
  }
  if (!ex.reply.accepted) {
    std::filesystem::remove(next_file, ec);  // never in force: the next run starts afresh
    return {
        1, "the aggregator refused the key rotation: " + ex.reply.reason + "; the agent keeps key " + current.key_id()};
  }
  list_retired_key(id, current);  // first: a crash after the rename leaves no key on the token unlisted
  std::filesystem::rename(next_file, id.key_file, ec);
  if (ec)
    return {1, "the aggregator accepted key " + next->key_id() + " but " + next_file.string() + " could not replace " +
                   id.key_file.string() + " (" + ec.message() + "); run rotate-key again to finish"};
  sync_directory(id.key_file.parent_path());
  return {0, "rotated the key of " + config.post_id + "/" + config.agent_id + " from " + current.key_id() + " to " +
                 next->key_id() + " (in " + id.key_file.string() +
                 "). A running agent takes it up within a few seconds and reconnects once; the aggregator accepts the "
                 "old key for its grace period (--key-rotation-grace-s)"};
}

}  // namespace postwatch::agent
