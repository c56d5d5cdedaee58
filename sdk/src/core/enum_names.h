// Names of enums whose values run 0, 1, ... N-1: one table each, in value order.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace tollgate::core {

// names[value], or "unknown" for a value outside the table (a bad cast).
template <typename E, std::size_t N>
constexpr std::string_view name_of(E value, const std::array<std::string_view, N>& names) noexcept {
  const auto i = static_cast<std::size_t>(value);
  return i < N ? names[i] : "unknown";
}

}  // namespace tollgate::core
