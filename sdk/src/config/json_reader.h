// The strict JSON reader of the config (docs/configuration.md): a syntax pass that refuses
// what nlohmann would let through (duplicate keys, deep nesting), and Fields, the reader of
// one object that names every error by its path ("policies[2].rate"). Schemas
// (config/config_schema.h) read structs with it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

#include "tollgate/config.h"

namespace tollgate::core::json {

using Json = nlohmann::json;

// Durations: the key table keeps time in 32-bit milliseconds (limiter/entry.h), so no interval
// may come near 2^31 ms (~24.8 days).
inline constexpr std::uint64_t kMaxDurationMs = 7ull * 24 * 3600 * 1000;  // 7 days
inline constexpr Nanos kMaxDuration = std::chrono::milliseconds(kMaxDurationMs);
inline constexpr std::string_view kDurationTooLarge = "must be <= 604800000 (7 days)";

// Throws ConfigError(field, reason).
[[noreturn]] void fail(std::string field, std::string reason);
std::string in_quotes(std::string_view s);
// "a" + "b" -> "a.b"; "" + "b" -> "b".
std::string join(std::string_view parent, std::string_view child);
// "a", 2 -> "a[2]".
std::string indexed(std::string_view parent, std::size_t i);

// Parses text as JSON, refusing malformed input (field "$", with the parser's message and
// byte offset), duplicate keys and nesting deeper than 32 levels (named by their path).
Json read_strict(std::string_view text);

// An object being read: rejects fields it does not know, reads the ones it does.
class Fields {
 public:
  Fields(const Json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail(path_.empty() ? "$" : path_, "expected an object");
  }

  // Every field present must be one of `known`.
  void allow_only(std::initializer_list<std::string_view> known) const {
    allow_only(known.begin(), known.end());
  }
  template <typename It>
  void allow_only(It begin, It end) const {
    for (const auto& [k, v] : j_.items()) {
      if (std::find(begin, end, k) == end) fail(join(path_, k), "unknown field");
    }
  }

  bool has(std::string_view k) const { return j_.contains(k); }
  const Json& at(std::string_view k) const { return j_.at(std::string(k)); }
  std::string path(std::string_view k) const { return join(path_, k); }

  void read(std::string_view k, std::string& out) const {
    if (!has(k)) return;
    const Json& v = at(k);
    if (!v.is_string()) fail(path(k), "expected a string");
    out = v.get<std::string>();
  }

  void read(std::string_view k, double& out) const {
    if (!has(k)) return;
    const Json& v = at(k);
    if (!v.is_number()) fail(path(k), "expected a number");
    out = v.get<double>();
  }

  void read(std::string_view k, bool& out) const {
    if (!has(k)) return;
    const Json& v = at(k);
    if (!v.is_boolean()) fail(path(k), "expected true or false");
    out = v.get<bool>();
  }

  // A whole number >= 0 (100 and 1e2 are both fine; 2.5 and -1 are not).
  std::uint64_t whole(std::string_view k, std::uint64_t max, std::string_view too_large) const {
    const Json& v = at(k);
    if (!v.is_number()) fail(path(k), "expected a number");
    if (v.is_number_unsigned()) {
      const auto n = v.get<std::uint64_t>();
      if (n > max) fail(path(k), std::string(too_large));
      return n;
    }
    if (v.is_number_integer()) fail(path(k), "must not be negative");
    const double d = v.get<double>();
    if (d != std::floor(d)) fail(path(k), "must be a whole number");
    if (d < 0) fail(path(k), "must not be negative");
    if (d > static_cast<double>(max)) fail(path(k), std::string(too_large));
    return static_cast<std::uint64_t>(d);
  }

  template <typename Int>
  void read(std::string_view k, Int& out) const {
    static_assert(std::is_unsigned_v<Int>);
    if (!has(k)) return;
    constexpr auto kMax = std::numeric_limits<Int>::max();
    out = static_cast<Int>(whole(k, kMax, "must be <= " + std::to_string(kMax)));
  }

  // Milliseconds in JSON, nanoseconds in Config.
  void read_ms(std::string_view k, Nanos& out) const {
    if (!has(k)) return;
    const std::uint64_t ms = whole(k, kMaxDurationMs, kDurationTooLarge);
    out = std::chrono::milliseconds(static_cast<std::int64_t>(ms));
  }

 private:
  const Json& j_;
  std::string path_;
};

}  // namespace tollgate::core::json
