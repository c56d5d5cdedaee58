// Value rules shared by the config's validation (core/config_validate.cpp) and the stores'
// own sections (core/store_sections.h). Each throws ConfigError naming `field`.
#pragma once

#include <string>

#include "tollgate/config.h"

namespace tollgate::core {

// >= 0 (> 0 when positive), at most 7 days.
void check_duration(const std::string& field, Nanos d, bool positive);
// Finite and at most 2^53 (token counts stay exact in the Redis scripts' doubles).
void check_tokens(const std::string& field, double v);

inline bool is_window(PolicyKind kind) {
  return kind == PolicyKind::kFixedWindow || kind == PolicyKind::kSlidingWindow;
}

}  // namespace tollgate::core
