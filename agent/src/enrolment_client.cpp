#include "postwatch/agent/enrolment_client.hpp"

#include "postwatch/catalogue.hpp"
#include "postwatch/clock.hpp"
#include "postwatch/enrolment.hpp"
#include "postwatch/secret_file.hpp"
#include "postwatch/topics.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <optional>

namespace postwatch::agent {

namespace {

mqtt::connect_options connect_options(const AgentConfig& config, const std::string& password) {
  auto b = mqtt::connect_options_builder()
               .clean_session(true)
               .connect_timeout(std::chrono::seconds(10))
               .mqtt_version(MQTTVERSION_3_1_1);
  if (!config.username.empty()) b.user_name(config.username);
  if (!password.empty()) b.password(password);
  if (config.uses_tls())
    b.ssl(mqtt::ssl_options_builder()
              .trust_store(config.tls.ca_file)
              .key_store(config.tls.cert_file)
              .private_key(config.tls.key_file)
              .enable_server_cert_auth(true)
              .verify(config.tls.verify_hostname)
              .finalize());
  return b.finalize();
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
  auto key = SigningKey::load_or_create(id.key_file, created);
  log.info("{} key {} in {}", created ? "made" : "reusing", key.key_id(), id.key_file.string());

  EnrolRequest req;
  req.agent_id = config.agent_id;
  req.post_id = config.post_id;
  req.token_id = token->id;
  req.public_key = key.public_key();
  req.proof = enrolment_proof(token->secret, config.post_id, config.agent_id, key.public_key());
  req.at_ms = now_utc_ms();
  auto payload = encode_enrol_request(req, key);

  const auto request_topic = topics::agent_topic(post->region, config.post_id, config.agent_id, topics::Channel::Enrol);
  const auto reply_topic =
      topics::agent_topic(post->region, config.post_id, config.agent_id, topics::Channel::Enrolled);
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
    if (decode_enrol_reply(bytes, r) != DecodeError::None)
      ignored = "an unreadable answer";
    else if (r.key_id != key_id_of(token->aggregator_key) ||
             !verify_payload(bytes, r.signature_offset, token->aggregator_key))
      ignored = "an answer not signed by the aggregator the token names (key " + key_id_of(token->aggregator_key) + ")";
    else if (r.token_id != token->id || r.agent_id != config.agent_id || r.post_id != config.post_id)
      ignored = "an answer to another request";
    else
      reply = r;
    cv.notify_all();
  });
  std::string password = config.password_file.empty() ? "" : read_secret_file(config.password_file);
  try {
    client.connect(connect_options(config, password))->wait_for(std::chrono::seconds(15));
    if (!client.is_connected()) return {1, "cannot connect to " + config.broker_uri};
    client.subscribe(reply_topic, 1)->wait_for(std::chrono::seconds(10));
    client.publish(request_topic, payload.data(), payload.size(), 1, false)->wait_for(std::chrono::seconds(10));
  } catch (const mqtt::exception& e) {
    return {1, "cannot reach the broker " + config.broker_uri + ": " + e.what() +
                   " (the broker's ACL must let this agent publish " + request_topic + " and read " + reply_topic +
                   ")"};
  }
  log.info("sent the enrolment request for {}/{} (token {}) on {}; waiting up to {} s", config.post_id, config.agent_id,
           token->id, request_topic, timeout.count());
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
    return {3, "no answer from the aggregator within " + std::to_string(timeout.count()) + " s" +
                   (noise.empty() ? "" : " (ignored " + noise + ")") +
                   "; is it running and connected to this broker? The key stays in " + id.key_file.string() +
                   " for the next try"};
  if (!got->accepted) return {1, "the aggregator refused the enrolment: " + got->reason};
  write_public_keys(id.aggregator_key_file, {token->aggregator_key});
  return {0, "enrolled " + config.post_id + "/" + config.agent_id + " with key " + key.key_id() +
                 "; the aggregator's key " + key_id_of(token->aggregator_key) + " is in " +
                 id.aggregator_key_file.string() + ". Restart the agent to sign with it"};
}

}  // namespace postwatch::agent
