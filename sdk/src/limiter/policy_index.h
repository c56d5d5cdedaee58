// Which policy governs a key: an exact match beats a pattern; among patterns ("prefix*")
// the longest prefix wins; "*" matches every key. Immutable after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tollgate/config.h"

namespace tollgate::core {

class PolicyIndex {
 public:
  explicit PolicyIndex(const std::vector<Policy>& policies);
  // Index into the policies given to the constructor.
  std::optional<std::uint16_t> match(std::string_view key) const;

 private:
  std::unordered_map<std::string, std::uint16_t> exact_;
  std::vector<std::pair<std::string, std::uint16_t>> prefixes_;  // longest first
};

}  // namespace tollgate::core
