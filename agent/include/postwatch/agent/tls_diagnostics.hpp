// TLS material and handshakes checked with OpenSSL directly: for `--check-config`, and to say
// in plain words why a TLS connect failed (Paho only reports "TCP/TLS connect failure").
#pragma once

#include "postwatch/agent/agent_config.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace postwatch::agent {

// The certificate files of `tls` (paths already resolved): readable, PEM that parses, within
// their validity (a warning otherwise: a board without a clock battery starts in 1970), the key
// matches the client certificate and is not readable by group or others. Fields are "tls.*".
std::vector<ConfigProblem> check_tls_files(const TlsConfig& tls);

// Does one TLS handshake with the broker of `broker_uri` (ssl:// or mqtts://) using the same
// trust store, client certificate and host name check as the agent, and explains a failure, e.g.
// "the broker's certificate was not trusted (unable to get local issuer certificate); hint: ...".
// Empty when the handshake succeeds or the broker cannot be reached at all.
std::string diagnose_tls_handshake(const std::string& broker_uri, const TlsConfig& tls,
                                   std::chrono::milliseconds timeout);

}  // namespace postwatch::agent
