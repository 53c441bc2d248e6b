// How the agent and the aggregator log in to the broker over Paho: the user and password, and
// TLS with the broker's certificate checked against a CA (and a client certificate for mTLS).
// One place, so both ends verify the broker the same way. Each side adds what is its own (clean
// session, keep-alive, last will, reconnects).
//
// Header-only and naming Paho: include it only where Paho is linked (the agent, the
// aggregator's ingest); postwatch_common itself does not link Paho.
#pragma once

#include <mqtt/connect_options.h>
#include <mqtt/ssl_options.h>

#include <functional>
#include <string>
#include <utility>

namespace postwatch {

struct MqttTls {
  std::string ca_file;              // empty: OpenSSL's default paths
  std::string cert_file, key_file;  // the client's certificate and key (mTLS); empty: none
  bool verify_hostname = true;      // the broker's certificate names the host connected to
};

// A user name and password on `options`, each when set.
inline void set_mqtt_login(mqtt::connect_options_builder& options, const std::string& username,
                           const std::string& password) {
  if (!username.empty()) options.user_name(username);
  if (!password.empty()) options.password(password);
}

// TLS on `options`: the broker's certificate is always checked. `on_error` gets OpenSSL's error
// text for a failed handshake, on Paho's thread (Paho says only "TCP/TLS connect failure");
// Paho keeps a pointer into the options: they must outlive the connect.
inline void set_mqtt_tls(mqtt::connect_options_builder& options, const MqttTls& tls,
                         std::function<void(const std::string&)> on_error = {}) {
  auto ssl = mqtt::ssl_options_builder()
                 .trust_store(tls.ca_file)
                 .key_store(tls.cert_file)
                 .private_key(tls.key_file)
                 .enable_server_cert_auth(true)
                 .verify(tls.verify_hostname);
  if (on_error) ssl.error_handler(std::move(on_error));
  options.ssl(ssl.finalize());
}

}  // namespace postwatch
