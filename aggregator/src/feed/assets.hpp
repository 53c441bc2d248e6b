// Files compiled into the binary (aggregator/web/*, the OpenAPI description): the
// dashboard needs no files next to the binary and no network. The table is generated
// at build time by aggregator/web/embed_assets.cmake.
#pragma once

#include <span>
#include <string_view>

namespace postwatch::aggregator {

struct EmbeddedAsset {
  std::string_view path;          // URL path it is served at, e.g. "/assets/app.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view etag;          // quoted content hash
  std::string_view body;
};

std::span<const EmbeddedAsset> embedded_assets();
// The asset served at `path`, or null.
const EmbeddedAsset* find_embedded_asset(std::string_view path);

}  // namespace postwatch::aggregator
