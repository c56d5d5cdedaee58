// Stats declared once (tollgate/stats_list.h): a store's own counters reach Limiter::stats(),
// and the C view lists every field of tg_stats with its offset.
#include <gtest/gtest.h>

#include <cstddef>
#include <set>
#include <string>

#include "tollgate/tollgate.h"
#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

// The in-process store, reporting store counters of its own.
class CountingStore final : public QuotaStore {
 public:
  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override {
    inner_.lease(std::move(batch), std::move(done));
  }
  void give_back(std::vector<GiveBack> batch) override { inner_.give_back(std::move(batch)); }
  StoreStats stats() const override {
    StoreStats s;
    s.bulkhead_rejected = 3;
    s.short_circuited = 5;
    s.store_retries = 7;
    return s;
  }

 private:
  InProcessStore inner_;
};

TEST(Stats, TheStoresCountersReachStats) {
  Config c;
  Policy p;
  p.name = "tenants";
  p.match = "tenant:*";
  p.rate = 10;
  c.policies.push_back(p);
  Limiter::Options o;
  o.store = std::make_shared<CountingStore>();
  o.background_thread = false;
  Limiter limiter(c, o);
  const Stats s = limiter.stats();
  EXPECT_EQ(s.bulkhead_rejected, 3u);
  EXPECT_EQ(s.short_circuited, 5u);
  EXPECT_EQ(s.store_retries, 7u);
}

TEST(Stats, TheCViewListsEveryFieldOnce) {
  std::set<std::string> names;
  std::size_t offset = 0;
  std::size_t i = 0;
  for (const char* name = nullptr; (name = tg_stats_field(&offset, i)) != nullptr; ++i) {
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_LT(offset, sizeof(tg_stats)) << name;
  }
  EXPECT_EQ(offset, sizeof(tg_stats));
#define TOLLGATE_STATS_NAMED(name, since, help) EXPECT_EQ(names.count(#name), 1u) << #name;
  TOLLGATE_STATS_COUNTERS(TOLLGATE_STATS_NAMED)
#undef TOLLGATE_STATS_NAMED
  EXPECT_EQ(names.count("denied"), 1u);
  EXPECT_EQ(names.count("version"), 1u);
}

}  // namespace
}  // namespace tollgate
