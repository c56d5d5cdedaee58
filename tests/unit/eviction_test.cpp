// Eviction (limiter/eviction.h) directly: a real key table, the sweep's times given (no
// clock), and the graveyard's rule for when an entry may be freed.
#include "limiter/eviction.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace tollgate::core {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr nanoseconds kIdle = seconds(10);  // idle_timeout: a whole table per 5 s

Entry* add(KeyTable& table, const std::string& key) {
  EpochGuard g;
  const std::uint64_t h = hash_key(key);
  auto [e, result] = table.find_or_insert(
      key, h, [&] { return Entry::create(key, static_cast<std::uint32_t>(h), 0); });
  EXPECT_EQ(result, KeyTable::Insert::kInserted);
  return e;
}

bool has(const std::vector<Entry*>& v, const Entry* e) {
  return std::find(v.begin(), v.end(), e) != v.end();
}

TEST(Eviction, AKeyUntouchedForThreeLooksIsAVictimAndAKeyTouchedBetweenLooksIsNot) {
  KeyTable table(8);
  Entry* idle = add(table, "idle");
  Entry* busy = add(table, "busy");
  Eviction ev;
  EXPECT_TRUE(ev.sweep(table, seconds(1), kIdle).empty());  // the first call only starts
  for (int look = 1; look <= 3; ++look) {
    busy->touched.store(true);
    const auto victims = ev.sweep(table, seconds(1) + look * kIdle / 2, kIdle);
    EXPECT_EQ(has(victims, idle), look == 3) << "look " << look;
    EXPECT_FALSE(has(victims, busy));
  }
  EXPECT_FALSE(busy->touched.load());  // the sweep cleared it
}

TEST(Eviction, TheSliceFollowsTheTimeSinceTheLastSweep) {
  KeyTable table(512);
  for (int i = 0; i < 512; ++i) add(table, "k" + std::to_string(i));
  Eviction ev;
  (void)ev.sweep(table, seconds(1), kIdle);
  // A twentieth of idle_timeout since the last sweep: a tenth of the slots is looked at.
  nanoseconds now = seconds(1);
  std::set<Entry*> victims;
  auto slice = [&] {
    now += kIdle / 20;
    const auto v = ev.sweep(table, now, kIdle);
    victims.insert(v.begin(), v.end());
    return v.size();
  };
  for (int i = 0; i < 20; ++i) slice();
  EXPECT_TRUE(victims.empty());  // two cycles at most: no key has had three looks
  const std::size_t first = slice();
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, 512u / 4);  // only keys of the slice just looked at
  for (int i = 0; i < 11; ++i) slice();
  EXPECT_EQ(victims.size(), 512u);  // three cycles: every key
}

TEST(Eviction, UnderPressureOneUntouchedLookIsEnoughAndASliceIsLookedAtAtOnce) {
  KeyTable table(8);
  Entry* idle = add(table, "idle");
  Entry* busy = add(table, "busy");
  busy->touched.store(true);
  Eviction ev;
  (void)ev.sweep(table, seconds(1), kIdle);
  EXPECT_TRUE(ev.press());
  EXPECT_FALSE(ev.press());                                 // once until the sweep
  const auto victims = ev.sweep(table, seconds(1), kIdle);  // no time has passed
  EXPECT_TRUE(has(victims, idle));
  EXPECT_FALSE(has(victims, busy));
  EXPECT_TRUE(ev.press());  // the sweep took the flag
}

TEST(Eviction, AnEntryIsFreedOnlyOnceNothingCanReachIt) {
  Eviction ev;
  Entry* queued = Entry::create("queued", 1, 0);
  Entry* timer = Entry::create("timer", 2, 0);
  Entry* permits = Entry::create("permits", 3, 0);
  Entry* free = Entry::create("free", 4, 0);
  queued->queued.store(true);
  timer->s.timer_refs = 1;
  permits->permits_out.store(2);
  for (Entry* e : {queued, timer, permits, free}) ev.bury(e);
  ev.reclaim();
  EXPECT_EQ(ev.buried(), 3u);
  EXPECT_FALSE(ev.any_buried([&](const Entry* e) { return e == free; }));
  queued->queued.store(false);
  timer->s.timer_refs = 0;
  ev.reclaim();
  EXPECT_EQ(ev.buried(), 1u);
  {
    EpochGuard reader;  // a reader inside its epoch holds what is buried after it entered
    Entry* late = Entry::create("late", 5, 0);
    ev.bury(late);
    ev.reclaim();
    EXPECT_TRUE(ev.any_buried([&](const Entry* e) { return e == late; }));
  }
  permits->permits_out.store(0);
  ev.reclaim();
  EXPECT_TRUE(ev.empty());
}

TEST(Eviction, WhatGoesBackIsTheBalanceOrAConcurrencyKeysWholeReservation) {
  Entry* tokens = Entry::create("tokens", 1, 0);
  tokens->balance.store(42);
  EXPECT_EQ(take_unspent(*tokens, false), 42);
  EXPECT_EQ(tokens->balance.load(), 0);
  Entry* permits = Entry::create("permits", 2, 0);
  permits->s.leases[0].granted = 10;
  permits->s.lease_count = 1;
  permits->balance.store(7);  // three permits out
  EXPECT_EQ(take_unspent(*permits, true), 10);
  EXPECT_EQ(permits->balance.load(), 0);
  Entry::destroy(tokens);
  Entry::destroy(permits);
}

}  // namespace
}  // namespace tollgate::core
