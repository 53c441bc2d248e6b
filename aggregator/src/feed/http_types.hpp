// Request/response types shared by the HTTP server, the routes and the live stream.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>

namespace postwatch::aggregator {

namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Answers a request later, from any thread, once.
using HttpReply = std::function<void(HttpResponse)>;
// Takes a request to answer later through `reply` (true: work that must not hold up the
// io_context, such as the progress report), or leaves it to the handler (false).
using HttpDeferredHandler = std::function<bool(const HttpRequest&, const HttpReply& reply)>;

}  // namespace postwatch::aggregator
