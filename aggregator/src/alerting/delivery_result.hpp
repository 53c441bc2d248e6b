// What a channel's deliver() says of one attempt.
#pragma once

#include <string>

namespace postwatch::aggregator {

struct DeliveryResult {
  bool ok = false;
  std::string error;  // why not, for last_error and the log; never holds a secret
};

}  // namespace postwatch::aggregator
