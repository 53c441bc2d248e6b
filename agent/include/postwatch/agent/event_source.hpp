// What every local input of the agent has in common: it turns something outside (a socket, a
// directory, a probe, a script, stdin) into IndicatorEvents and hands them to an EventSink (stdin,
// LineInput, hands each line to its caller: it outlives the agent it submits to).
#pragma once

#include "postwatch/agent/agent.hpp"
#include "postwatch/event.hpp"

#include <functional>
#include <string>
#include <string_view>

namespace postwatch::agent {

// Where a source delivers events: Agent::submit in the agent, a recorder in tests. Thread-safe.
using EventSink = std::function<SubmitResult(IndicatorEvent)>;

// One input. start() returns at once (the source runs on its own thread); stop() joins it.
// A source never blocks another one or the publisher.
class EventSource {
 public:
  virtual ~EventSource() = default;
  virtual std::string_view name() const = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
  // Why the input is not working now (its last run failed), for the health check after a
  // fleet bundle (docs/fleet.md); empty when it is.
  virtual std::string problem() const { return {}; }
  // False while the input cannot be judged yet (a script probe whose first run has not ended):
  // a bundle on trial is not called healthy before each of its inputs has shown a result.
  virtual bool has_result() const { return true; }
};

}  // namespace postwatch::agent
