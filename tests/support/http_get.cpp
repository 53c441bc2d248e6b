// A blocking HTTP GET for tests, in its own file: it needs Boost.Beast, which the agent-only
// (cross) build of the agent's unit tests does not have.
#include "support/feed_http.hpp"
#include "support/test_support.hpp"

namespace postwatch::test {

HttpResult http_get(unsigned short port, const std::string& target) {
  auto reply = http_call(port, feedhttp::verb::get, target);
  return {reply.status, std::move(reply.body)};
}

}  // namespace postwatch::test
