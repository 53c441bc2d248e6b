#include "alerting/webhook_channel.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <memory>
#include <mutex>

namespace postwatch::aggregator {

namespace {

// curl_global_init is not thread-safe; do it once, before the first handle.
void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::size_t discard_response(char*, std::size_t size, std::size_t n, void*) { return size * n; }

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac.data(), &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

DeliveryResult WebhookChannel::deliver(const std::string& body, std::int64_t now_ms) const {
  init_curl_once();
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return {false, "cannot make a libcurl handle"};
  curl_slist* raw = nullptr;
  for (const std::string& h :
       {std::string("Content-Type: application/json"), std::string("Expect:"),  // no 100-continue round trip
        "X-Postwatch-Timestamp: " + std::to_string(now_ms / 1000),
        "X-Postwatch-Signature: sha256=" + hmac_sha256_hex(config_.secret, body)})
    raw = curl_slist_append(raw, h.c_str());
  std::unique_ptr<curl_slist, CurlFree> headers(raw);
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, config_.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "postwatch-aggregator");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);        // a worker thread: no SIGALRM for DNS timeouts
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would re-send the body elsewhere
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_response);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) return {false, curl_easy_strerror(rc)};
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) return {false, "HTTP " + std::to_string(status)};
  return {true, ""};
}

}  // namespace postwatch::aggregator
