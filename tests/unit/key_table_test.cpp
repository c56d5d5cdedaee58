// The key table's inline hash and key compare (limiter/key_table.h): equal keys hash alike,
// every byte of a key counts, and the bits the table uses are spread.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "limiter/key_table.h"

namespace tollgate::core {
namespace {

TEST(KeyTableHash, EveryByteOfAKeyCounts) {
  std::mt19937_64 rng(7);
  for (std::size_t n = 0; n <= 40; ++n) {
    std::string a(n, '\0');
    for (char& c : a) c = static_cast<char>(rng());
    const std::string b = a;  // another buffer, the same bytes
    EXPECT_TRUE(same_key_bytes(a.data(), b.data(), n)) << n;
    EXPECT_EQ(hash_key(a), hash_key(b)) << n;
    for (std::size_t i = 0; i < n; ++i) {
      std::string c = a;
      c[i] = static_cast<char>(c[i] ^ 0x40);
      EXPECT_FALSE(same_key_bytes(a.data(), c.data(), n)) << n << " byte " << i;
      EXPECT_NE(hash_key(a), hash_key(c)) << n << " byte " << i;
    }
  }
}

TEST(KeyTableHash, KeysOfOneShapeSpreadOverSlotsAndTags) {
  // Keys that differ in a few digits, as tenant ids do: the home slot comes from the upper
  // half of the hash, the tag from bits 32-35, Entry::hash32 from the lower half.
  constexpr std::size_t kKeys = 100'000, kBuckets = 1024;
  std::unordered_set<std::uint64_t> seen;
  std::unordered_set<std::uint32_t> low;
  std::vector<std::size_t> home(kBuckets), tag(16);
  char buf[32];
  for (std::size_t i = 0; i < kKeys; ++i) {
    const int n = std::snprintf(buf, sizeof(buf), "tenant:%06zu", i);
    const std::uint64_t h = hash_key(std::string_view(buf, static_cast<std::size_t>(n)));
    seen.insert(h);
    low.insert(static_cast<std::uint32_t>(h));
    ++home[((h >> 32) * kBuckets) >> 32];
    ++tag[(h >> 32) & 15];
  }
  EXPECT_EQ(seen.size(), kKeys);
  EXPECT_GT(low.size(), kKeys - 10);  // ~1 collision of 32 bits expected among 100k
  // ~98 a bucket; a spread hash keeps every bucket within ±40 % (6 standard deviations).
  for (std::size_t c : home) {
    EXPECT_GT(c, kKeys / kBuckets * 6 / 10);
    EXPECT_LT(c, kKeys / kBuckets * 14 / 10);
  }
  for (std::size_t c : tag) {
    EXPECT_GT(c, kKeys / 16 * 95 / 100);
    EXPECT_LT(c, kKeys / 16 * 105 / 100);
  }
}

}  // namespace
}  // namespace tollgate::core
