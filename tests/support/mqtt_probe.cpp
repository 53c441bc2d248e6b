#include "support/mqtt_probe.hpp"

#include "postwatch/clock.hpp"

namespace postwatch::test {

namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

MqttProbe::MqttProbe(const std::string& uri, const std::string& client_id, ProbeOptions options)
    : options_(std::move(options)), client_(uri, client_id) {
  client_.set_message_callback([this](mqtt::const_message_ptr m) { on_message(std::move(m)); });
  if (options_.connect_now) connect();
}

MqttProbe::~MqttProbe() {
  try {
    if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(2));
  } catch (...) {
  }
}

void MqttProbe::connect() {
  auto b = mqtt::connect_options_builder().clean_session(true).connect_timeout(options_.connect_timeout);
  if (options_.mqtt_3_1_1) b.mqtt_version(MQTTVERSION_3_1_1);
  if (!options_.user.empty()) b.user_name(options_.user);
  if (!options_.password.empty()) b.password(options_.password);
  if (options_.tls) {
    auto ssl = mqtt::ssl_options_builder()
                   .trust_store(options_.tls->ca.string())
                   .enable_server_cert_auth(true)
                   .verify(options_.tls->verify_host);
    if (!options_.tls->cert.empty()) ssl.key_store(options_.tls->cert.string()).private_key(options_.tls->key.string());
    b.ssl(ssl.finalize());
  }
  client_.connect(b.finalize())->wait();
  for (const auto& [filter, qos] : options_.subscriptions) subscribe(filter, qos);
}

void MqttProbe::subscribe(const std::string& topic_filter, int qos) {
  if (!try_subscribe(topic_filter, qos)) throw std::runtime_error("subscription to '" + topic_filter + "' refused");
}

bool MqttProbe::try_subscribe(const std::string& topic_filter, int qos) {
  try {
    auto token = client_.subscribe(topic_filter, qos);
    token->wait();
    auto codes = token->get_subscribe_response().get_reason_codes();
    return codes.empty() || codes[0] < 0x80;
  } catch (const mqtt::exception&) {
    return false;
  }
}

void MqttProbe::publish(const std::string& topic, const std::string& payload, int qos, bool retained) {
  client_.publish(topic, payload.data(), payload.size(), qos, retained)->wait();
}

void MqttProbe::publish(const std::string& topic, const std::vector<std::uint8_t>& payload, int qos, bool retained) {
  client_.publish(topic, payload.data(), payload.size(), qos, retained)->wait();
}

void MqttProbe::publish_event(const std::string& region, const std::string& post, const std::string& indicator,
                              double value, ValueKind kind, const std::string& agent) {
  std::uint64_t seq = 0;
  {
    std::lock_guard lk(mu_);
    seq = ++next_seq_[post + "/" + agent];
  }
  EventBatch b{agent, post, now_utc_ms(), {}};
  b.events.push_back(IndicatorEvent{seq, now_utc_ms(), indicator, kind, value, "", "", {}});
  publish("postwatch/v1/" + region + "/" + post + "/" + agent + "/events", encode_batch(b));
}

void MqttProbe::on_message(mqtt::const_message_ptr m) {
  ProbeMessage msg{m->get_topic(), m->get_payload_str(), m->is_retained()};
  std::optional<EventBatch> batch;
  if (msg.topic.ends_with("/events")) batch = decode_events(msg.payload);
  {
    std::lock_guard lk(mu_);
    if (batch)
      for (auto& e : batch->events) events_.emplace_back(msg.topic, std::move(e));
    messages_.push_back(std::move(msg));
  }
  changed_.notify_all();
}

std::vector<ProbeMessage> MqttProbe::messages() {
  std::lock_guard lk(mu_);
  return messages_;
}

std::vector<std::string> MqttProbe::payloads_on(const std::string& topic) {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (const auto& m : messages_)
    if (m.topic == topic) out.push_back(m.payload);
  return out;
}

bool MqttProbe::got(const std::string& topic, const std::string& payload) {
  std::lock_guard lk(mu_);
  for (const auto& m : messages_)
    if (m.topic == topic && m.payload == payload) return true;
  return false;
}

bool MqttProbe::got_retained(const std::string& topic, const std::string& payload) {
  std::lock_guard lk(mu_);
  for (const auto& m : messages_)
    if (m.retained && m.topic == topic && m.payload == payload) return true;
  return false;
}

std::vector<IndicatorEvent> MqttProbe::events(const std::string& topic) {
  std::lock_guard lk(mu_);
  std::vector<IndicatorEvent> out;
  out.reserve(events_.size());
  for (const auto& [t, e] : events_)
    if (topic.empty() || t == topic) out.push_back(e);
  return out;
}

std::vector<IndicatorEvent> MqttProbe::distinct_events(const std::string& topic) {
  std::map<std::uint64_t, IndicatorEvent> by_seq;
  for (auto& e : events(topic)) by_seq[e.seq] = std::move(e);
  std::vector<IndicatorEvent> out;
  out.reserve(by_seq.size());
  for (auto& [_, e] : by_seq) out.push_back(std::move(e));
  return out;
}

std::map<std::uint64_t, int> MqttProbe::seq_counts(const std::string& topic) {
  std::lock_guard lk(mu_);
  std::map<std::uint64_t, int> out;
  for (const auto& [t, e] : events_)
    if (topic.empty() || t == topic) ++out[e.seq];
  return out;
}

std::optional<AgentState> MqttProbe::last_state(const std::string& topic) {
  std::lock_guard lk(mu_);
  for (auto it = messages_.rbegin(); it != messages_.rend(); ++it)
    if (it->topic == topic)
      if (auto st = decode_state(it->payload)) return st;
  return std::nullopt;
}

bool MqttProbe::wait_for(const std::function<bool(const std::vector<ProbeMessage>&)>& pred,
                         std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return changed_.wait_for(lk, timeout, [&] { return pred(messages_); });
}

bool MqttProbe::wait_for_events(const std::function<bool(const std::vector<IndicatorEvent>&)>& pred,
                                std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return changed_.wait_for(lk, timeout, [&] {
    std::vector<IndicatorEvent> all;
    all.reserve(events_.size());
    for (const auto& [_, e] : events_) all.push_back(e);
    return pred(all);
  });
}

std::optional<EventBatch> MqttProbe::decode_events(const std::string& payload) {
  EventBatch batch;
  if (decode_batch(bytes_of(payload), batch) != DecodeError::None) return std::nullopt;
  return batch;
}

std::optional<AgentState> MqttProbe::decode_state(const std::string& payload) {
  AgentState st;
  if (decode_agent_state(bytes_of(payload), st) != DecodeError::None) return std::nullopt;
  return st;
}

}  // namespace postwatch::test
