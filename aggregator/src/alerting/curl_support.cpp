#include "alerting/curl_support.hpp"

#include <memory>
#include <mutex>

namespace postwatch::aggregator {

namespace {

// Keeps the first bytes of an answer for the error message (Alertmanager says why it refused).
std::size_t keep_start(char* data, std::size_t size, std::size_t n, void* out) {
  auto* s = static_cast<std::string*>(out);
  s->append(data, std::min(size * n, std::size_t{200} - std::min<std::size_t>(200, s->size())));
  return size * n;
}

}  // namespace

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

void apply_transport(CURL* c, const ChannelTransport& t) {
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(t.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(t.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // a worker thread: no SIGALRM for DNS timeouts
  if (!t.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, t.ca_file.c_str());
  if (!t.username.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, t.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, t.password.c_str());
  }
}

DeliveryResult post_json(const std::string& url, const std::string& body, const std::vector<std::string>& headers,
                         const ChannelTransport& transport) {
  init_curl_once();
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return {false, "cannot make a libcurl handle"};
  curl_slist* raw = curl_slist_append(nullptr, "Content-Type: application/json");
  raw = curl_slist_append(raw, "Expect:");  // no 100-continue round trip
  for (const auto& h : headers) raw = curl_slist_append(raw, h.c_str());
  std::unique_ptr<curl_slist, CurlFree> header_list(raw);
  std::string answer;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "postwatch-aggregator");
  apply_transport(c, transport);
  if (!transport.username.empty()) curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would re-send the body elsewhere
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_start);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) return {false, curl_easy_strerror(rc)};
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299)
    return {false, "HTTP " + std::to_string(status) + (answer.empty() ? "" : ": " + answer)};
  return {true, ""};
}

}  // namespace postwatch::aggregator
