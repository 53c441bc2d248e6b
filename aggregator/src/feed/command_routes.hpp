// /api/v1/commands: remote commands to one agent (docs/fleet.md, "Remote commands").
#pragma once

#include "feed/access.hpp"
#include "feed/http_helpers.hpp"
#include "ingest/agent_table.hpp"
#include "postwatch/catalogue.hpp"

#include <functional>
#include <string>

namespace postwatch::aggregator {

class CommandDesk;

class CommandRoutes {
 public:
  using PublishRetained = std::function<void(const std::string& topic, const std::string& payload)>;
  // commands: null when this aggregator sends none (503); publish_retained: an agent's
  // pending commands go out through it.
  CommandRoutes(const IndicatorCatalogue& catalogue, const AgentTable& agents, CommandDesk* commands,
                PublishRetained publish_retained)
      : catalogue_(catalogue), agents_(agents), commands_(commands), publish_retained_(std::move(publish_retained)) {}
  HttpResponse commands() const;
  HttpResponse command(std::string_view id) const;
  HttpResponse send_command(const HttpRequest& req, const Principal* who);

 private:
  const IndicatorCatalogue& catalogue_;
  const AgentTable& agents_;
  CommandDesk* commands_;
  PublishRetained publish_retained_;
};

}  // namespace postwatch::aggregator
