// `postwatch-agent run`'s own input: event lines (JSON, one per line) from stdin, a file
// (--input) or a named pipe (--fifo), as an EventSource beside the config's inputs. Unlike those
// it outlives a switch to a fleet bundle's config, so what it hands a line to is the caller's.
#pragma once

#include "postwatch/agent/event_source.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace postwatch::agent {

class LineInput final : public EventSource {
 public:
  // Parses and submits one line; empty when accepted, else why not.
  using LineSink = std::function<std::string(const std::string& line)>;

  // Reads `fd` (not closed here); `label` names it in rejections ("-" for stdin). Blank lines
  // and lines starting with '#' are skipped. `stop_too` (the process's SIGTERM flag) also ends it.
  LineInput(int fd, std::string label, LineSink sink, const std::atomic<bool>& stop_too);
  ~LineInput() override;

  std::string_view name() const override { return "input"; }
  void start() override;
  // Joins the reader, which sees the stop within one poll: a FIFO opened for reading and
  // writing never reports end of input.
  void stop() override;

  // The end of the input was reached (or the reader stopped).
  bool finished() const { return finished_; }
  // Lines refused (malformed, or refused by the agent), each told on stderr.
  std::uint64_t rejected() const { return rejected_; }

 private:
  void read_lines();

  int fd_;
  std::string label_;
  LineSink sink_;
  const std::atomic<bool>& stop_too_;
  std::atomic<bool> stopping_{false}, finished_{false};
  std::atomic<std::uint64_t> rejected_{0};
  std::thread reader_;
};

}  // namespace postwatch::agent
