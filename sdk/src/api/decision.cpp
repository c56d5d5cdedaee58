#include "tollgate/decision.h"

#include "api/enum_names.h"
#include "tollgate/observer.h"

namespace tollgate {

namespace {
// The names are part of the API: logs, metrics tags and the bindings use them.
// clang-format off
constexpr std::array<std::string_view, kReasonCount> kReasonNames = {
    "ok", "over_limit", "cold_key", "lease_pending", "penalty_box", "queue_full", "timeout",
    "cancelled", "key_table_full", "no_policy", "invalid_argument", "fallback_local",
    "fallback_deny", "fallback_allow", "shutdown", "over_group_limit", "in_debt"};
// clang-format on
}  // namespace

std::string_view to_string(Reason reason) noexcept {
  return core::name_of(reason, kReasonNames);
}

std::string_view to_string(BreakerState state) noexcept {
  static constexpr std::array<std::string_view, 3> kNames = {"closed", "open", "half_open"};
  return core::name_of(state, kNames);
}

std::string_view to_string(LogLevel level) noexcept {
  static constexpr std::array<std::string_view, 4> kNames = {"debug", "info", "warn", "error"};
  return core::name_of(level, kNames);
}

Observer::~Observer() = default;

}  // namespace tollgate
