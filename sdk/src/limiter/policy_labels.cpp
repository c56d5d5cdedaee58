#include "limiter/policy_labels.h"

#include <algorithm>

namespace tollgate::core {

std::uint8_t PolicyLabels::label_of(const Policy& p) {
  if (!named(p)) return kOther;
  std::lock_guard lk(mu_);
  auto it = std::find(names_.begin(), names_.end(), p.name);
  if (it != names_.end()) return static_cast<std::uint8_t>(it - names_.begin());
  if (names_.size() == kMax) return kOther;
  names_.push_back(p.name);
  return static_cast<std::uint8_t>(names_.size() - 1);
}

std::vector<std::string> PolicyLabels::names() const {
  std::lock_guard lk(mu_);
  return names_;
}

}  // namespace tollgate::core
