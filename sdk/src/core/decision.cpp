#include "tollgate/decision.h"
#include "tollgate/observer.h"

namespace tollgate {

// The names are part of the API: logs, metrics tags and the bindings use them.
std::string_view to_string(Reason reason) noexcept {
  switch (reason) {
    case Reason::kOk:
      return "ok";
    case Reason::kOverLimit:
      return "over_limit";
    case Reason::kColdKey:
      return "cold_key";
    case Reason::kLeasePending:
      return "lease_pending";
    case Reason::kPenaltyBox:
      return "penalty_box";
    case Reason::kQueueFull:
      return "queue_full";
    case Reason::kTimeout:
      return "timeout";
    case Reason::kCancelled:
      return "cancelled";
    case Reason::kKeyTableFull:
      return "key_table_full";
    case Reason::kNoPolicy:
      return "no_policy";
    case Reason::kInvalidArgument:
      return "invalid_argument";
    case Reason::kFallbackLocal:
      return "fallback_local";
    case Reason::kFallbackDeny:
      return "fallback_deny";
    case Reason::kFallbackAllow:
      return "fallback_allow";
    case Reason::kShutdown:
      return "shutdown";
    case Reason::kOverGroupLimit:
      return "over_group_limit";
  }
  return "unknown";
}

std::string_view to_string(BreakerState state) noexcept {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

Observer::~Observer() = default;

}  // namespace tollgate
