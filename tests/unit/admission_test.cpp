// The admission sketch alone (sdk/src/core/admission.h): counts, conservative update,
// ageing, and the bar in the table's reserve.
#include "limiter/admission.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "limiter/key_table.h"

namespace tollgate::core {
namespace {

std::uint64_t nth(std::uint64_t i) {
  return hash_key("k:" + std::to_string(i));
}

TEST(AdmissionSketch, CountsWhatItIsToldAndSaturates) {
  AdmissionSketch s(1000);
  EXPECT_EQ(s.estimate(nth(1)), 0u);
  for (std::uint32_t i = 1; i <= 20; ++i) {
    EXPECT_EQ(s.record(nth(1)), std::min(i, AdmissionSketch::kMaxCount));
  }
  EXPECT_EQ(s.estimate(nth(1)), AdmissionSketch::kMaxCount);
  EXPECT_EQ(s.estimate(nth(2)), 0u);
}

TEST(AdmissionSketch, AgeingHalvesOnceASampleIsCounted) {
  AdmissionSketch s(100);  // sample: 1,000 requests
  for (int i = 0; i < 12; ++i) s.record(nth(7));
  EXPECT_FALSE(s.age());
  for (std::uint64_t i = 0; i < 1000; ++i) s.record(nth(1000 + i));
  const std::uint32_t before = s.estimate(nth(7));
  ASSERT_GE(before, 12u);
  EXPECT_TRUE(s.age());
  EXPECT_EQ(s.estimate(nth(7)), before / 2);
  EXPECT_FALSE(s.age());
}

TEST(AdmissionSketch, TakesAtMostFourBytesAKey) {
  for (std::size_t n : {1u, 100u, 1000u, 65537u, 1000000u}) {
    AdmissionSketch s(n);
    EXPECT_LE(s.bytes(), std::max<std::size_t>(4 * n, 128)) << n;
  }
}

TEST(AdmissionSketch, OpenPartAdmitsEveryoneWithoutCounting) {
  AdmissionSketch s(1600);  // reserve: the last 100 places
  s.table_full();
  EXPECT_EQ(s.open_limit(), 1500u);
  EXPECT_TRUE(s.admits(nth(1), 0));
  EXPECT_TRUE(s.admits(nth(1), 1499));
  EXPECT_EQ(s.estimate(nth(1)), 0u);
}

// A table filling up with keys seen once (a large tenant population, not a flood) fills
// completely: the reserve is guarded only once the table has been full.
TEST(AdmissionSketch, ReserveIsGuardedOnlyFromTheFirstFullTableUntilThereIsRoom) {
  AdmissionSketch s(1600);
  for (std::uint64_t i = 0; i < 1600; ++i) EXPECT_TRUE(s.admits(nth(i), i));
  EXPECT_FALSE(s.guarded());
  s.table_full();
  EXPECT_TRUE(s.guarded());
  EXPECT_FALSE(s.admits(nth(5000), 1550));  // seen once, in the reserve
  EXPECT_TRUE(s.admits(nth(5001), 1499));   // below it
  s.settle(1550);
  EXPECT_TRUE(s.guarded());
  s.settle(1499);
  EXPECT_FALSE(s.guarded());
  EXPECT_TRUE(s.admits(nth(5002), 1550));
}

// In the reserve, under a flood of keys seen once (ten times the table a sample), a key
// seen once is nearly never admitted and a key that comes back is, within a few requests.
TEST(AdmissionSketch, FloodKeysStayOutAndReturningKeysGetIn) {
  constexpr std::size_t kMax = 10'000;
  AdmissionSketch s(kMax);
  s.table_full();
  std::uint64_t flood = 0, flood_admitted = 0;
  std::vector<int> to_admit;
  for (int round = 0; round < 200; ++round) {
    // 1,000 flood keys for each request of 10 returning keys (as 1M/s against 10/s).
    for (int k = 0; k < 1000; ++k) {
      flood_admitted += s.admits(nth(1'000'000 + flood++), kMax) ? 1 : 0;
    }
    if (round % 20 == 0) to_admit.push_back(0);
    for (std::size_t j = 0; j < to_admit.size(); ++j) {
      if (to_admit[j] < 0) continue;
      ++to_admit[j];
      if (s.admits(nth(j), kMax)) to_admit[j] = -to_admit[j];
    }
    s.age();
  }
  EXPECT_LT(static_cast<double>(flood_admitted) / static_cast<double>(flood), 0.002)
      << flood_admitted << " of " << flood << ", noise " << s.noise();
  for (std::size_t j = 0; j + 1 < to_admit.size(); ++j) {
    ASSERT_LT(to_admit[j], 0) << "returning key " << j << " never admitted";
    EXPECT_LE(-to_admit[j], 10) << "returning key " << j;
  }
}

}  // namespace
}  // namespace tollgate::core
