#include "feed/http_helpers.hpp"

#include "feed/snapshot_json.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <ctime>

namespace postwatch::aggregator {
using nlohmann::json;

TargetParts split_target(const HttpRequest& req) {
  std::string_view target(req.target().data(), req.target().size());
  auto p = target.find('?');
  if (p == std::string_view::npos) return {target, {}};
  return {target.substr(0, p), target.substr(p + 1)};
}

HttpResponse json_response(http::status status, const json& body) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.body() = dump_json(body);
  return res;
}

HttpResponse error_response(http::status status, const std::string& message) {
  return json_response(status, json{{"error", {{"status", static_cast<int>(status)}, {"message", message}}}});
}

HttpResponse csv_response(const std::string& filename, std::string body) {
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "text/csv; charset=utf-8");
  res.set(http::field::content_disposition, "attachment; filename=\"" + filename + "\"");
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

HttpResponse method_not_allowed(const HttpRequest& req, std::string_view target, std::string_view allow) {
  auto res = error_response(http::status::method_not_allowed, std::string(req.method_string()) +
                                                                  " is not supported on " + std::string(target) +
                                                                  " (allowed: " + std::string(allow) + ")");
  res.set(http::field::allow, bsv(allow));
  return res;
}

double round2(double v) { return std::round(v * 100.0) / 100.0; }

std::string iso_utc(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000 + 1000) % 1000);
}

std::optional<bool> wants_csv(const HttpQuery& q) {
  auto it = q.find("format");
  if (it == q.end() || it->second == "json") return false;
  if (it->second == "csv") return true;
  return std::nullopt;
}

std::optional<HttpResponse> refuse_non_json(const HttpRequest& req) {
  auto ct = req.find(http::field::content_type);
  std::string_view type =
      ct == req.end() ? std::string_view() : std::string_view(ct->value().data(), ct->value().size());
  if (type.starts_with("application/json")) return std::nullopt;
  return error_response(http::status::unsupported_media_type, "send the body as Content-Type: application/json");
}

HttpQuery parse_query(std::string_view q) {
  auto decode = [](std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out += ' ';
      } else if (s[i] == '%' && i + 2 < s.size()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        if (ec == std::errc() && p == s.data() + i + 3) {
          out += static_cast<char>(v);
          i += 2;
        } else {
          out += '%';
        }
      } else {
        out += s[i];
      }
    }
    return out;
  };
  HttpQuery out;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      out[decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace postwatch::aggregator
