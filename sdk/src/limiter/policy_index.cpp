#include "limiter/policy_index.h"

#include <algorithm>

namespace tollgate::core {

PolicyIndex::PolicyIndex(const std::vector<Policy>& policies) {
  for (std::size_t i = 0; i < policies.size(); ++i) {
    const std::string& m = policies[i].match;
    auto idx = static_cast<std::uint16_t>(i);
    if (!m.empty() && m.back() == '*') {
      prefixes_.emplace_back(m.substr(0, m.size() - 1), idx);
    } else {
      exact_.emplace(m, idx);
    }
  }
  std::stable_sort(prefixes_.begin(), prefixes_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

std::optional<std::uint16_t> PolicyIndex::match(std::string_view key) const {
  if (auto it = exact_.find(std::string(key)); it != exact_.end()) return it->second;
  for (const auto& [prefix, idx] : prefixes_) {
    if (key.starts_with(prefix)) return idx;
  }
  return std::nullopt;
}

}  // namespace tollgate::core
