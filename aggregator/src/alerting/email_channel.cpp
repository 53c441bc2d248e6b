#include "alerting/email_channel.hpp"

#include "alerting/alarm_text.hpp"
#include "alerting/curl_support.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <sstream>

namespace postwatch::aggregator {
using nlohmann::json;

namespace {

// A header value: printable ASCII only (catalogue names could hold anything), no line breaks.
std::string header_safe(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return out;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// "RED goal alarm raised: goal 7 (security) at bamako"
std::string headline(const json& c) {
  std::string out = upper(c.value("level", std::string())) + " " + c.value("kind", std::string()) + " alarm " +
                    c.value("event", std::string()) + ": " + alarm_subject(c);
  if (c.value("kind", "") == "goal" && c.contains("facts") && c["facts"].contains("posts")) {
    std::string posts;
    for (const auto& p : c["facts"]["posts"]) posts += (posts.empty() ? "" : ", ") + p.get<std::string>();
    if (!posts.empty()) out += " at " + posts;
  }
  return out;
}

// LF to CRLF, as SMTP wants.
std::string crlf(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

struct Upload {
  const std::string* text;
  std::size_t at = 0;
};

std::size_t read_upload(char* buf, std::size_t size, std::size_t n, void* arg) {
  auto* u = static_cast<Upload*>(arg);
  std::size_t len = std::min(size * n, u->text->size() - u->at);
  std::memcpy(buf, u->text->data() + u->at, len);
  u->at += len;
  return len;
}

}  // namespace

std::string email_message(const json& notification, const EmailChannelConfig& config, const std::string& dashboard_url,
                          std::int64_t now_ms) {
  json alarms = notification.value("alarms", json::array());
  if (!alarms.is_array()) alarms = json::array();
  // The subject leads with a red change when there is one.
  auto lead = std::find_if(alarms.begin(), alarms.end(), [](const json& c) { return c.value("level", "") == "red"; });
  if (lead == alarms.end()) lead = alarms.begin();
  std::string subject = "[Postwatch] ";
  if (alarms.size() == 1)
    subject += headline(*lead);
  else if (!alarms.empty())
    subject += std::to_string(alarms.size()) + " alarm changes: " + headline(*lead) + " and " +
               std::to_string(alarms.size() - 1) + " more";
  else
    subject += "notification";
  const std::string id = notification.value("notification_id", std::string("unknown"));
  std::string to;
  for (const auto& t : config.to) to += (to.empty() ? "" : ", ") + t;

  std::ostringstream m;
  m << "Date: " << rfc5322_date(now_ms) << "\n"
    << "From: " << config.from << "\n"
    << "To: " << to << "\n"
    << "Subject: " << header_safe(subject) << "\n"
    << "Message-ID: <" << header_safe(id) << "@" << config.from.substr(config.from.find('@') + 1) << ">\n"
    << "MIME-Version: 1.0\n"
    << "Content-Type: text/plain; charset=utf-8\n"
    << "Content-Transfer-Encoding: 8bit\n"
    << "X-Postwatch-Notification: " << header_safe(id) << "\n"
    << "\n";
  for (const auto& c : alarms) {
    m << headline(c) << "\n\n" << alarm_facts_text(c);
    if (auto causes = alarm_causes_text(c); !causes.empty()) {
      m << "\nCauses:\n";
      std::istringstream lines(causes);
      for (std::string line; std::getline(lines, line);) m << "  " << line << "\n";
    }
    m << "\n";
  }
  if (!dashboard_url.empty()) m << "Dashboard: " << dashboard_url << "\n\n";
  m << "-- \nPostwatch notification " << id << ", attempt " << notification.value("attempt", 1) << ", channel "
    << config.name << ".\n";
  return crlf(m.str());
}

DeliveryResult EmailChannel::deliver(const std::string& body, std::int64_t now_ms) const {
  json notification = json::parse(body, nullptr, false);
  if (!notification.is_object()) return {false, "not a notification"};
  const std::string message = email_message(notification, config_, dashboard_url_, now_ms);
  init_curl_once();
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return {false, "cannot make a libcurl handle"};
  curl_slist* raw = nullptr;
  for (const auto& t : config_.to) raw = curl_slist_append(raw, ("<" + t + ">").c_str());
  std::unique_ptr<curl_slist, CurlFree> recipients(raw);
  Upload upload{&message};
  const std::string from = "<" + config_.from + ">";
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, config_.smtp_url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  // STARTTLS or smtps://: TLS or no mail (a server without STARTTLS is a failed attempt).
  const bool tls = config_.starttls || config_.smtp_url.starts_with("smtps://");
  curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(tls ? CURLUSESSL_ALL : CURLUSESSL_NONE));
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, recipients.get());
  curl_easy_setopt(c, CURLOPT_READFUNCTION, read_upload);
  curl_easy_setopt(c, CURLOPT_READDATA, &upload);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  apply_transport(c, config_.transport);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) return {false, std::string("SMTP: ") + curl_easy_strerror(rc)};
  return {true, ""};
}

}  // namespace postwatch::aggregator
