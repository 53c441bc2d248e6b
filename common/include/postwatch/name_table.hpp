// An enum's names in one table that serves both directions: to the text the API, the store and
// the config files use, and back (nothing for a name the table does not hold).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace postwatch {

template <typename E, std::size_t N>
struct NameTable {
  std::pair<E, std::string_view> rows[N];

  constexpr std::string_view name(E e) const {
    for (const auto& [value, name] : rows)
      if (value == e) return name;
    return {};
  }
  constexpr std::optional<E> parse(std::string_view s) const {
    for (const auto& [value, name] : rows)
      if (name == s) return value;
    return std::nullopt;
  }
  // "a, b or c": the names, for an error that lists what is allowed.
  std::string listed() const {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) out.append(i == 0 ? "" : i + 1 == N ? " or " : ", ").append(rows[i].second);
    return out;
  }
};

}  // namespace postwatch
