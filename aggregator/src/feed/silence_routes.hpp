// /api/v1/silences: silences and maintenance windows (docs/alerting.md).
#pragma once

#include "feed/access.hpp"
#include "feed/http_helpers.hpp"
#include "postwatch/catalogue.hpp"

#include <functional>

namespace postwatch::aggregator {

class SilenceBook;
struct Silence;

class SilenceRoutes {
 public:
  // silences: null without the store (503); silence_changed: told of one created or ended.
  SilenceRoutes(const IndicatorCatalogue& catalogue, SilenceBook* silences,
                std::function<void(const Silence&)> silence_changed)
      : catalogue_(catalogue), silences_(silences), silence_changed_(std::move(silence_changed)) {}
  HttpResponse silences(const HttpQuery& q) const;
  HttpResponse create_silence(const HttpRequest& req, const Principal* who);
  HttpResponse end_silence(std::string_view id, const Principal* who);

 private:
  const IndicatorCatalogue& catalogue_;
  SilenceBook* silences_;
  std::function<void(const Silence&)> silence_changed_;
};

}  // namespace postwatch::aggregator
