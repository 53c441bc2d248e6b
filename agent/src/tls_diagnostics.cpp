#include "postwatch/agent/tls_diagnostics.hpp"

#include "postwatch/agent/broker_route.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>

namespace postwatch::agent {

namespace {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PKeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using CtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  unsigned long last = e;
  while (e != 0) {  // the last error in the queue is usually the most specific
    last = e;
    e = ERR_get_error();
  }
  if (last == 0) return "";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  // "error:0A000086:SSL routines::certificate verify failed" -> "certificate verify failed"
  std::string s = buf;
  auto colon = s.rfind(':');
  return colon == std::string::npos ? s : s.substr(colon + 1);
}

std::string asn1_time(const ASN1_TIME* t) {
  if (!t) return "?";
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string name_of(const X509_NAME* name) {
  if (!name) return "?";
  char buf[256];
  X509_NAME_oneline(name, buf, sizeof buf);
  return buf;
}

std::vector<X509Ptr> read_certificates(const std::string& file) {
  std::vector<X509Ptr> out;
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the loop ends on "no start line"
  return out;
}

// Empty when `cert` is valid now, otherwise a sentence.
std::string validity_problem(X509* cert) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
    return "is not valid before " + asn1_time(X509_get0_notBefore(cert)) +
           " (is this machine's clock right? a board without a clock battery starts in 1970 until NTP sets it)";
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) return "expired on " + asn1_time(X509_get0_notAfter(cert));
  return "";
}

std::string readable_problem(const std::string& file) {
  std::ifstream in(file);
  if (!in) return "cannot read " + file + ": " + std::strerror(errno);
  return "";
}

using Endpoint = HostPort;

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// A connected, blocking TCP socket with send and receive timeouts, or -1, within `timeout`.
int connect_blocking(const Endpoint& ep, std::chrono::milliseconds timeout) {
  std::string error;
  int fd = connect_tcp(ep, timeout, error);
  if (fd >= 0) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return fd;
}

// The broker's own certificate as seen during verification (it is gone once the handshake fails).
thread_local X509* t_leaf = nullptr;

int remember_leaf(int preverify_ok, X509_STORE_CTX* ctx) {
  if (X509* leaf = X509_STORE_CTX_get0_cert(ctx); leaf && !t_leaf) {
    X509_up_ref(leaf);
    t_leaf = leaf;
  }
  return preverify_ok;
}

std::string explain_verify_failure(long result, X509* peer, const Endpoint& ep, const TlsConfig& tls) {
  std::string reason = X509_verify_cert_error_string(result);
  std::string trust = tls.ca_file.empty() ? "the system trust store" : "tls.ca_file (" + tls.ca_file + ")";
  switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "the broker's certificate has expired" +
             (peer ? " (not valid after " + asn1_time(X509_get0_notAfter(peer)) + ", " +
                         name_of(X509_get_subject_name(peer)) + ")"
                   : std::string()) +
             "; hint: the broker needs a renewed certificate, or this machine's clock is wrong";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "the broker's certificate is not valid yet" +
             (peer ? " (not before " + asn1_time(X509_get0_notBefore(peer)) + ")" : std::string()) +
             "; hint: check this machine's clock (a board without a clock battery starts in 1970 until NTP sets it)";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return "the broker's certificate was not trusted (" + reason + "; issued by " +
             (peer ? name_of(X509_get_issuer_name(peer)) : std::string("?")) + "); hint: " + trust +
             " must hold the CA that issued the broker's certificate";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "the broker's certificate does not name " + ep.host + " (" + reason +
             "); hint: use a host name or address from the certificate's subjectAltName in broker_uri";
    default: return "the broker's certificate was not accepted (" + reason + ")";
  }
}

std::string explain_handshake_error(const std::string& err, const TlsConfig& tls) {
  if (err.find("certificate required") != std::string::npos)
    return "the broker requires a client certificate (" + err +
           "); hint: set tls.cert_file and tls.key_file to this agent's certificate and key";
  if (err.find("unknown ca") != std::string::npos || err.find("bad certificate") != std::string::npos ||
      err.find("certificate unknown") != std::string::npos || err.find("certificate expired") != std::string::npos ||
      err.find("decrypt error") != std::string::npos || err.find("access denied") != std::string::npos)
    return "the broker refused this agent's client certificate (" + err + "); hint: tls.cert_file (" +
           (tls.cert_file.empty() ? std::string("not set") : tls.cert_file) +
           ") must be valid and issued by a CA the broker trusts";
  return "TLS handshake failed (" + err + ")";
}

}  // namespace

std::vector<ConfigProblem> check_tls_files(const TlsConfig& tls) {
  std::vector<ConfigProblem> out;
  if (!tls.ca_file.empty()) {
    if (auto why = readable_problem(tls.ca_file); !why.empty()) {
      out.push_back({"tls.ca_file", why});
    } else {
      auto certs = read_certificates(tls.ca_file);
      if (certs.empty()) out.push_back({"tls.ca_file", tls.ca_file + " holds no PEM certificate"});
      for (auto& c : certs)
        if (auto why = validity_problem(c.get()); !why.empty())
          out.push_back({"tls.ca_file", "CA certificate " + name_of(X509_get_subject_name(c.get())) + " " + why, true});
    }
  }
  X509Ptr client;
  if (!tls.cert_file.empty()) {
    if (auto why = readable_problem(tls.cert_file); !why.empty()) {
      out.push_back({"tls.cert_file", why});
    } else {
      auto certs = read_certificates(tls.cert_file);
      if (certs.empty()) {
        out.push_back({"tls.cert_file", tls.cert_file + " holds no PEM certificate"});
      } else {
        client = std::move(certs.front());
        if (auto why = validity_problem(client.get()); !why.empty())
          out.push_back({"tls.cert_file",
                         "client certificate " + name_of(X509_get_subject_name(client.get())) + " " + why, true});
      }
    }
  }
  std::string key_file = tls.key_file.empty() ? tls.cert_file : tls.key_file;
  std::string key_field = tls.key_file.empty() ? "tls.cert_file" : "tls.key_file";
  if (!key_file.empty() && readable_problem(key_file).empty()) {
    BioPtr bio(BIO_new_file(key_file.c_str(), "r"));
    PKeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>("")) : nullptr);
    std::string err = openssl_error();
    if (!key) {
      if (!tls.key_file.empty())
        out.push_back({key_field, key_file + " holds no usable PEM private key" +
                                      (err.empty() ? "" : " (" + err + ")") +
                                      "; password-protected keys are not supported"});
      else
        out.push_back({"tls.key_file", "not set and " + key_file + " holds no private key"});
    } else {
      if (auto why = secret_file_exposure(key_file); !why.empty()) out.push_back({key_field, why});
      if (client && X509_check_private_key(client.get(), key.get()) != 1) {
        ERR_clear_error();
        out.push_back(
            {key_field, "the private key in " + key_file + " does not belong to the certificate in " + tls.cert_file});
      }
    }
  } else if (!tls.key_file.empty()) {
    out.push_back({"tls.key_file", readable_problem(tls.key_file)});
  }
  return out;
}

std::string diagnose_tls_handshake(const std::string& broker_uri, const TlsConfig& tls,
                                   std::chrono::milliseconds timeout) {
  auto parsed = broker_host_port(broker_uri);
  if (!parsed) return "";
  const Endpoint& ep = *parsed;
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return "";
  if (tls.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx.get()) != 1
                          : SSL_CTX_load_verify_locations(ctx.get(), tls.ca_file.c_str(), nullptr) != 1)
    return "cannot load the trust store " + (tls.ca_file.empty() ? std::string("(system)") : tls.ca_file) + " (" +
           openssl_error() + ")";
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, remember_leaf);
  if (!tls.cert_file.empty()) {
    const std::string& key = tls.key_file.empty() ? tls.cert_file : tls.key_file;
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert_file.c_str()) != 1)
      return "cannot load the client certificate " + tls.cert_file + " (" + openssl_error() + ")";
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1)
      return "cannot load the client key " + key + " (" + openssl_error() + ")";
  }
  int fd = connect_blocking(ep, timeout);
  if (fd < 0) return "";  // unreachable: Paho's own message says so
  SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  if (!is_ip_literal(ep.host)) SSL_set_tlsext_host_name(ssl.get(), ep.host.c_str());
  if (tls.verify_hostname) {
    if (is_ip_literal(ep.host))
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), ep.host.c_str());
    else
      SSL_set1_host(ssl.get(), ep.host.c_str());
  }
  std::string result;
  if (int rc = SSL_connect(ssl.get()); rc != 1) {
    int ssl_error = SSL_get_error(ssl.get(), rc);
    int saved_errno = errno;
    long verify = SSL_get_verify_result(ssl.get());
    std::string err = openssl_error();
    if (verify == X509_V_OK && err.empty() && ssl_error == SSL_ERROR_SYSCALL &&
        (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT)) {
      result.clear();  // a slow link, not a verdict: say nothing rather than something wrong
    } else if (verify != X509_V_OK) {
      X509Ptr peer(SSL_get_peer_certificate(ssl.get()));
      if (!peer) {
        peer.reset(t_leaf);
        t_leaf = nullptr;
      }
      result = explain_verify_failure(verify, peer.get(), ep, tls);
    } else {
      result = explain_handshake_error(
          err.empty() ? std::string("the broker closed the connection during the handshake") : err, tls);
    }
  } else {
    // With TLS 1.3 the broker checks the client certificate after the client's handshake is
    // done and says so in an alert; a broker that is content waits for MQTT CONNECT instead.
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1,
               static_cast<int>(std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(1)).count())) == 1) {
      char byte;
      if (SSL_read(ssl.get(), &byte, 1) <= 0) {
        std::string err = openssl_error();
        if (!err.empty()) result = explain_handshake_error(err, tls);
      }
    }
    SSL_shutdown(ssl.get());
  }
  ssl.reset();
  ::close(fd);
  if (t_leaf) X509_free(t_leaf);
  t_leaf = nullptr;
  ERR_clear_error();
  return result;
}

}  // namespace postwatch::agent
