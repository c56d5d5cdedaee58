// The values of the tollgate.policy attribute (docs/observability.md, "Decisions per
// policy"): a small number per value, which the per-thread stripes count decisions under.
// Label 0 is "other": policies without a name of their own (a policy's name defaults to its
// match, which for a per-tenant override is a tenant key), decisions no policy made, and
// names past the cap. A name takes the next label the first time a config names it and
// keeps it for the limiter's life, so the counters under a value only grow. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tollgate/config.h"

namespace tollgate::core {

class PolicyLabels {
 public:
  static constexpr std::size_t kMax = 16;  // "other" and at most 15 names
  static constexpr std::uint8_t kOther = 0;
  static constexpr std::string_view kOtherName = "other";

  // Whether the policy's name may be an attribute value: set, and not its match.
  static bool named(const Policy& p) noexcept { return !p.name.empty() && p.name != p.match; }
  // The policy's label, taken now if its name has none yet.
  std::uint8_t label_of(const Policy& p);
  // The values by label: [0] is "other"; never more than kMax.
  std::vector<std::string> names() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> names_{std::string(kOtherName)};
};

}  // namespace tollgate::core
