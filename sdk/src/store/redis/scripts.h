// The Lua scripts that run the global buckets in Redis live in lua/*.lua; the build embeds
// their text, SHA1 and ARGV slot names (store/redis/lua_scripts.h, generated). Here the slots are
// named for C++: one enum per script, in the order of the script's `slots` table, its count
// checked against that table at compile time.
#pragma once

#include <cstddef>

#include "store/redis/lua_scripts.h"

namespace tollgate::redis {

inline constexpr const char* kLeaseScript = lua::kLeaseText.data();  // NUL-terminated
inline constexpr const char* kGiveBackScript = lua::kGiveBackText.data();

// lua/lease.lua's ARGV, in order.
enum class LeaseArg : std::size_t {
  kKind,
  kWant,
  kMin,
  kTtlUs,
  kRate,
  kBurst,
  kLimit,
  kWindowUs,
  kHolder,
  kDemand,
  kHeld,
  kGroupRate,
  kGroupBurst,
  kWeight,
  kGuaranteedRate,
  kFairInstances,
  kTenant,
  kCount
};
static_assert(static_cast<std::size_t>(LeaseArg::kCount) == lua::kLeaseSlots.size(),
              "LeaseArg and the slots of lua/lease.lua differ");

// lua/give_back.lua's ARGV, in order.
enum class GiveBackArg : std::size_t {
  kKind,
  kTokens,
  kExpiresAtUs,
  kHolder,
  kWindowUs,
  kRate,
  kBurst,
  kGroupRate,  // 0: no group budget to charge a debt to
  kGroupBurst,
  kCount
};
static_assert(static_cast<std::size_t>(GiveBackArg::kCount) == lua::kGiveBackSlots.size(),
              "GiveBackArg and the slots of lua/give_back.lua differ");

}  // namespace tollgate::redis
