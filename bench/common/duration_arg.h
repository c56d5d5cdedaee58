// A duration on a simulator's command line, in seconds: "5s", "500ms", "2m" or "5".
// Throws std::invalid_argument for anything else. Shared by tollgate_sim and tollgate_fleet.
#pragma once

#include <stdexcept>
#include <string>

namespace tollgate::bench {

inline double seconds_of(const std::string& v) {
  std::size_t used = 0;
  const double x = std::stod(v, &used);
  const std::string unit = v.substr(used);
  if (unit.empty() || unit == "s") return x;
  if (unit == "ms") return x / 1000;
  if (unit == "m" || unit == "min") return x * 60;
  throw std::invalid_argument("unit");
}

}  // namespace tollgate::bench
