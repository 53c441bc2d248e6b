// What the channels share of libcurl: its one-time global set-up, handles that free
// themselves, and a bounded JSON POST. Blocking; only the outbox's worker thread calls it.
#pragma once

#include "alerting/delivery_result.hpp"
#include "alerting/notification_config.hpp"

#include <curl/curl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace postwatch::aggregator {

// curl_global_init, once per process, before the first handle (it is not thread-safe).
void init_curl_once();

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// Sets a channel's deadline, CA file and login (HTTP basic auth, or SMTP AUTH) on `c`.
void apply_transport(CURL* c, const ChannelTransport& t);

// POSTs `body` as application/json with `headers` ("Name: value") to an http(s) url; no
// redirects (the body would go elsewhere). Any 2xx is delivered; otherwise the error names
// the status and the start of the answer.
DeliveryResult post_json(const std::string& url, const std::string& body, const std::vector<std::string>& headers,
                         const ChannelTransport& transport);

}  // namespace postwatch::aggregator
