// The config types' own methods: names of enums, a policy's derived quantities, the
// group budgets resolved into the policies, ConfigError. Reading JSON is config_parse.cpp,
// the value rules config_validate.cpp, files config_file.cpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tollgate/config.h"

#include "api/enum_names.h"

namespace tollgate {

std::string_view to_string(ColdKeyMode mode) noexcept {
  static constexpr std::array<std::string_view, 2> kNames = {"deny", "optimistic"};
  return core::name_of(mode, kNames);
}

std::string_view to_string(PolicyKind kind) noexcept {
  static constexpr std::array<std::string_view, 4> kNames = {"token_bucket", "fixed_window",
                                                             "sliding_window", "concurrency"};
  return core::name_of(kind, kNames);
}

double Policy::effective_burst() const noexcept {
  return burst == 0 ? rate : burst;
}

double Group::effective_burst() const noexcept {
  return burst == 0 ? rate : burst;
}

std::vector<ResolvedPolicy> Config::resolved_policies() const {
  std::vector<ResolvedPolicy> out;
  out.reserve(policies.size());
  for (const Policy& policy : policies) out.push_back(ResolvedPolicy{policy});
  for (ResolvedPolicy& p : out) {
    for (const Group& g : groups) {
      if (!p.group.empty() && g.name == p.group) {
        p.group_rate = g.rate;
        p.group_burst = g.effective_burst();
      }
    }
  }
  return out;
}

double Policy::refill_per_second() const noexcept {
  if (kind == PolicyKind::kTokenBucket) return rate;
  if (kind == PolicyKind::kConcurrency || window.count() <= 0) return 0;
  return static_cast<double>(limit) * 1e9 / static_cast<double>(window.count());
}

double Policy::fallback_rate() const noexcept {
  if (fallback.rate > 0) return fallback.rate;
  return refill_per_second() / std::max<std::uint32_t>(1, fallback.instances);
}

double Policy::fallback_burst() const noexcept {
  if (fallback.burst > 0) return fallback.burst;
  return std::max(1.0, std::floor(static_cast<double>(capacity()) /
                                  std::max<std::uint32_t>(1, fallback.instances)));
}

double Policy::fallback_allowance(double seconds, std::uint32_t instances) const noexcept {
  seconds = std::max(0.0, seconds);
  if (fallback.share()) {
    return (refill_per_second() + effective_burst() / Fallback::kShareTauSeconds) * (seconds + 1.0);
  }
  return static_cast<double>(instances) * (fallback_burst() + fallback_rate() * seconds);
}

std::string_view to_string(FallbackMode mode) noexcept {
  static constexpr std::array<std::string_view, 3> kNames = {"local", "deny", "allow"};
  return core::name_of(mode, kNames);
}

std::uint64_t Policy::capacity() const noexcept {
  if (kind != PolicyKind::kTokenBucket) return limit;
  const double b = std::floor(effective_burst());
  // Saturate instead of converting out of range (a Config built in code may be invalid).
  if (!(b > 0)) return 0;
  if (b >= 18446744073709551616.0) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(b);
}

ConfigError::ConfigError(std::string field, std::string reason)
    : std::invalid_argument(field + ": " + reason),
      field_(std::move(field)),
      reason_(std::move(reason)) {}

}  // namespace tollgate
