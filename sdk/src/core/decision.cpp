#include "tollgate/decision.h"

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
  }
  return "unknown";
}

}  // namespace tollgate
