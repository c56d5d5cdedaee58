// Rolling upgrades (issue 15): for a while instances of the previous release and of this one
// share a shard. A previous release's lease script — bucket layout 2,
// tests/redis/previous/lease_2f7f325.lua, verbatim from commit 2f7f325, the release before
// this one; and layout 1, lease_96e085a.lua from commit 96e085a, the one before that — runs
// beside this one's (layout 3, lua/lease.lua) on the same keys of one redis-server, each
// called as its release calls it (redis::lease_command): neither errs, each reads what the
// other wrote, and together they grant no more than the bucket's (and the group's) bound.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.h"
#include "store/redis/keys.h"
#include "store/redis/lease_calls.h"
#include "store/redis/scripts.h"

#if !defined(TOLLGATE_LAYOUT1_LEASE_SCRIPT) || !defined(TOLLGATE_LAYOUT2_LEASE_SCRIPT)
#error "TOLLGATE_LAYOUT{1,2}_LEASE_SCRIPT: the paths of tests/redis/previous/lease_*.lua"
#endif

namespace tollgate {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One release's lease script on the server: leases as that release asks for them.
class Release {
 public:
  Release(const RedisServer& s, const std::string& script, std::string holder)
      : s_(s), sha_(s.cli({"SCRIPT", "LOAD", script})), holder_(std::move(holder)) {}

  // Leases `want` for key (a new request id, or `id` for a retry); records what it granted.
  LeaseGrant lease(std::shared_ptr<const ResolvedPolicy> p, const std::string& key,
                   std::uint64_t want, std::string id = "", Nanos ttl = 2s) {
    LeaseRequest r;
    r.key = key;
    r.policy = std::move(p);
    r.want = want;
    r.holder = holder_;
    r.request_id = id.empty() ? holder_ + ":" + std::to_string(++seq_) : id;
    r.ttl = ttl;
    r.demand = 1000;
    const std::string out = s_.cli(redis::lease_command(sha_, r));
    std::istringstream lines(out);
    std::vector<long long> v;
    for (std::string line; std::getline(lines, line);) {
      try {
        v.push_back(std::stoll(line));
      } catch (const std::exception&) {
        break;
      }
    }
    LeaseGrant g;
    if (v.size() != 6) {
      g.ok = false;
      g.error = holder_ + ": " + out;
      ADD_FAILURE() << g.error;
      return g;
    }
    g.granted = static_cast<std::uint64_t>(v[0]);
    g.now = std::chrono::microseconds(v[1]);
    g.expires_at = std::chrono::microseconds(v[2]);
    g.remaining = static_cast<std::uint64_t>(v[3]);
    g.wait_until = std::chrono::microseconds(v[4]);
    g.limited_by = static_cast<LimitLevel>(v[5]);
    granted += g.granted;
    if (first == Nanos{0}) first = g.now;
    last = g.now;
    return g;
  }

  std::uint64_t granted = 0;
  Nanos first{0}, last{0};

 private:
  const RedisServer& s_;
  std::string sha_;
  std::string holder_;
  int seq_ = 0;
};

std::shared_ptr<ResolvedPolicy> bucket(double rate, double burst) {
  auto p = std::make_shared<ResolvedPolicy>();
  p->name = p->match = "tenants";
  p->rate = rate;
  p->burst = burst;
  p->group = "g";
  return p;
}

constexpr double kSlow = 0.001;  // no refill within a test

struct Previous {
  int layout;
  const char* script;
};

struct SchemaUpgrade : ::testing::TestWithParam<Previous> {
  RedisServer s;
  Release old_release{s, read_file(GetParam().script), "old"};
  Release new_release{s, redis::kLeaseScript, "new"};
};

INSTANTIATE_TEST_SUITE_P(Layouts, SchemaUpgrade,
                         ::testing::Values(Previous{2, TOLLGATE_LAYOUT2_LEASE_SCRIPT},
                                           Previous{1, TOLLGATE_LAYOUT1_LEASE_SCRIPT}),
                         [](const auto& info) {
                           return "layout" + std::to_string(info.param.layout);
                         });

TEST_P(SchemaUpgrade, TheScriptsDiffer) {
  EXPECT_NE(read_file(GetParam().script), std::string(redis::kLeaseScript));
}

// Each reads the level the other left, in both orders, for a plain and a fair bucket.
TEST_P(SchemaUpgrade, EachReleaseReadsTheLevelTheOtherLeft) {
  for (bool fair : {false, true}) {
    auto p = bucket(kSlow, 100);
    p->fair_instances = fair;
    p->name = fair ? "fair" : "plain";
    EXPECT_EQ(old_release.lease(p, "tenant:a", 60).granted, 60u) << p->name;
    EXPECT_EQ(new_release.lease(p, "tenant:a", 100).granted, 40u) << p->name;
    EXPECT_EQ(new_release.lease(p, "tenant:b", 70).granted, 70u) << p->name;
    EXPECT_EQ(old_release.lease(p, "tenant:b", 100).granted, 30u) << p->name;
    EXPECT_EQ(old_release.lease(p, "tenant:b", 10).granted, 0u) << p->name;
    EXPECT_EQ(new_release.lease(p, "tenant:a", 10).granted, 0u) << p->name;
  }
}

// A group's budget is one for both: tenant a asks through the old release, b through the new.
TEST_P(SchemaUpgrade, AGroupsBudgetIsSharedByBothReleases) {
  auto p = bucket(kSlow, 1000);
  p->group_rate = kSlow;
  p->group_burst = 100;
  EXPECT_EQ(old_release.lease(p, "tenant:a", 60).granted, 60u);
  EXPECT_EQ(new_release.lease(p, "tenant:b", 100).granted, 40u);
  EXPECT_EQ(old_release.lease(p, "tenant:a", 10).granted, 0u);
  EXPECT_EQ(new_release.lease(p, "tenant:b", 10).granted, 0u);
}

// A debt this release charges (give_back.lua, negative tokens) is in the level the previous
// release's lease script reads: it grants the rest only.
TEST_P(SchemaUpgrade, ADebtChargedByThisReleaseBindsThePreviousOne) {
  auto p = bucket(kSlow, 100);
  const std::string sha = s.cli({"SCRIPT", "LOAD", redis::kGiveBackScript});
  GiveBack g{"tenant:a", p, 30, Nanos{0}, "new"};
  g.debt = true;
  EXPECT_EQ(s.cli(redis::give_back_command(sha, g)).find("-30"), 0u);
  EXPECT_EQ(old_release.lease(p, "tenant:a", 100).granted, 70u);
  g.tokens = 20;
  (void)s.cli(redis::give_back_command(sha, g));
  EXPECT_EQ(new_release.lease(p, "tenant:a", 100).granted, 0u);
}

// This release sets a bucket's TTL only when the one it set before is too short (lease.lua,
// extend_ttl); the previous release sets its own, shorter (no 2 TTL of records in the hash),
// and this release must not take that for its own: after it, the TTL is long enough again.
TEST_P(SchemaUpgrade, ATtlThePreviousReleaseShortenedIsSetAgain) {
  if (GetParam().layout != 1) GTEST_SKIP() << "layout 2 sets the TTL as this release does";
  auto p = bucket(1000, 100);
  const std::string key = redis::bucket_key(redis::group_of(*p, "tenant:a"), "tenants", "tenant:a");
  auto pttl = [&] { return std::stoll(s.cli({"PTTL", key})); };
  constexpr long long kRecords = 4000;  // 2 lease TTLs of 2 s: the newest record's life
  EXPECT_EQ(new_release.lease(p, "tenant:a", 10).granted, 10u);
  EXPECT_GE(pttl(), kRecords);
  EXPECT_EQ(old_release.lease(p, "tenant:a", 10).granted, 10u);
  EXPECT_LT(pttl(), kRecords) << "the previous release no longer shortens it: a weaker test";
  EXPECT_EQ(new_release.lease(p, "tenant:a", 10).granted, 10u);
  EXPECT_GE(pttl(), kRecords);
}

// A retry is answered from its first answer although the other release wrote the bucket in
// between (each keeps its records where its release reads them).
TEST_P(SchemaUpgrade, RetriesAreAnsweredOnceWhateverTheOtherReleaseWrote) {
  for (bool fair : {false, true}) {
    auto p = bucket(kSlow, 100);
    p->fair_instances = fair;
    p->name = fair ? "fair" : "plain";
    const std::string n_id = "new:retried-" + p->name, o_id = "old:retried-" + p->name;
    LeaseGrant n1 = new_release.lease(p, "tenant:a", 30, n_id);
    LeaseGrant o1 = old_release.lease(p, "tenant:a", 30, o_id);
    LeaseGrant n2 = new_release.lease(p, "tenant:a", 30, n_id);
    LeaseGrant o2 = old_release.lease(p, "tenant:a", 30, o_id);
    EXPECT_EQ(n2.granted, n1.granted) << p->name;
    EXPECT_EQ(o2.granted, o1.granted) << p->name;
    EXPECT_EQ(n2.now, n1.now) << p->name << ": the retry was decided again";
    EXPECT_EQ(o2.now, o1.now) << p->name << ": the retry was decided again";
    EXPECT_EQ(new_release.lease(p, "tenant:a", 100).granted, 40u)
        << p->name << ": a retry was granted twice";
  }
}

// Layout 2 kept a record per request (a field tg:…:r:<request id>); this release keeps one
// per instance (r:<holder>) and sweeps the previous release's records as its own: two TTLs
// (at least a second) after they were written, the next lease deletes them.
TEST_P(SchemaUpgrade, ThePreviousReleasesRequestRecordsAreSweptByThisOne) {
  if (GetParam().layout != 2) GTEST_SKIP() << "layout 1 keeps its records in keys of their own";
  auto p = bucket(kSlow, 1000);
  const std::string key = redis::bucket_key(redis::group_of(*p, "tenant:a"), "tenants", "tenant:a");
  auto count = [&](const char* prefix) {
    std::istringstream fields(s.cli({"HKEYS", key}));
    int n = 0;
    for (std::string f; std::getline(fields, f);) n += f.rfind(prefix, 0) == 0;
    return n;
  };
  for (int i = 0; i < 10; ++i) old_release.lease(p, "tenant:a", 1, "", 250ms);
  new_release.lease(p, "tenant:a", 1, "", 250ms);
  EXPECT_EQ(count("tg:"), 10);
  EXPECT_EQ(count("r:"), 1);
  std::this_thread::sleep_for(1100ms);  // past the records' lifetime (a duration, not a wait)
  new_release.lease(p, "tenant:a", 1, "", 250ms);
  EXPECT_EQ(count("tg:"), 0) << "the previous release's records were not swept";
  EXPECT_EQ(count("r:"), 1);
  EXPECT_EQ(old_release.granted + new_release.granted, 12u);
}

// Both releases ask in turn, far more than the bucket refills (10 tokens every few
// milliseconds each against 50/s), for about a second of server time: together they are
// granted at most burst + rate x the time between the first and the last decision, and
// each is granted some.
TEST_P(SchemaUpgrade, BothReleasesOnOneBucketStayWithinItsBound) {
  struct Case {
    const char* name;
    bool fair;
    double group_rate;
  };
  for (const Case& c : {Case{"plain", false, 0}, Case{"fair", true, 0}, Case{"group", true, 50}}) {
    auto p = bucket(c.group_rate > 0 ? 1000 : 50, c.group_rate > 0 ? 1000 : 50);
    p->name = c.name;
    p->fair_instances = c.fair;
    p->group_rate = c.group_rate;
    p->group_burst = c.group_rate;
    old_release.granted = new_release.granted = 0;
    old_release.first = new_release.first = old_release.last = new_release.last = Nanos{0};
    std::string key = "tenant:a";
    for (int i = 0; i < 400 && (new_release.last - old_release.first) < 1s; ++i) {
      // In a group, the releases ask for two tenants of the one budget.
      old_release.lease(p, key, 10);
      new_release.lease(p, c.group_rate > 0 ? "tenant:b" : key, 10);
    }
    const double rate = c.group_rate > 0 ? c.group_rate : 50;
    const double seconds =
        std::chrono::duration<double>(new_release.last - old_release.first).count();
    const double bound = rate + rate * seconds;  // burst = rate
    EXPECT_LE(static_cast<double>(old_release.granted + new_release.granted), bound)
        << c.name << ": old " << old_release.granted << " + new " << new_release.granted << " over "
        << seconds << " s";
    EXPECT_GT(old_release.granted, 0u) << c.name;
    EXPECT_GT(new_release.granted, 0u) << c.name;
    EXPECT_GT(seconds, 0.2) << c.name << ": too few calls to see a refill";
  }
}

}  // namespace
}  // namespace tollgate
