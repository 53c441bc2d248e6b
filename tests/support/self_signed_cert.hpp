// A throwaway self-signed certificate for 127.0.0.1, made by the openssl command: a TLS server
// in a test presents it, and a client trusts it as its CA file.
#pragma once

#include "support/test_support.hpp"

#include <chrono>
#include <filesystem>
#include <stdexcept>

namespace postwatch::test {

struct SelfSignedCert {
  std::filesystem::path cert, key;
  explicit SelfSignedCert(const TempDir& dir) : cert(dir.path() / "cert.pem"), key(dir.path() / "key.pem") {
    ChildProcess openssl(
        {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", key.string(), "-out", cert.string()},
        dir.path() / "openssl.log");
    if (openssl.wait(std::chrono::seconds(30)) != 0) throw std::runtime_error("openssl req failed: " + openssl.log());
  }
};

}  // namespace postwatch::test
