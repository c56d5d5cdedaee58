// The wait queue (limiter/wait_queue.h) directly: plain entries, deadlines given as times
// (no clock), completions collected and called by the test.
#include "limiter/wait_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tollgate::core {
namespace {

using std::chrono::milliseconds;

struct Key {
  Entry* e;
  explicit Key(std::string_view name) : e(Entry::create(name, 1, 0)) {}
  ~Key() { Entry::destroy(e); }
};

// Records which wait ended, and how.
struct Log {
  std::vector<std::pair<int, Decision>> ended;
  Limiter::Completion note(int tag) {
    return [this, tag](const Decision& d) { ended.emplace_back(tag, d); };
  }
};

WaitId add(WaitQueue& q, Entry* e, std::uint64_t cost, milliseconds deadline,
           Limiter::Completion done, std::size_t max_per_key = 100) {
  WaitId id = 0;
  EXPECT_EQ(q.add(e, cost, Nanos{deadline}, max_per_key, done, id), WaitQueue::Added::kQueued);
  return id;
}

Decision timeout(const Waiter&) {
  return Decision{false, Reason::kTimeout, 0, Nanos{0}};
}

TEST(WaitQueue, DeadlinesEndInTheirOrderNotTheOrderOfQueuing) {
  WaitQueue q;
  Key a("a"), b("b");
  Log log;
  add(q, a.e, 1, milliseconds(30), log.note(1));
  add(q, b.e, 1, milliseconds(10), log.note(2));
  add(q, a.e, 1, milliseconds(20), log.note(3));
  add(q, b.e, 1, milliseconds(40), log.note(4));
  EXPECT_EQ(q.next_deadline(), Nanos{milliseconds(10)});

  Completions done;
  EXPECT_EQ(q.expire(Nanos{milliseconds(9)}, timeout, done), 0u);  // none due yet
  EXPECT_EQ(q.expire(Nanos{milliseconds(30)}, timeout, done), 3u);
  complete(done);
  ASSERT_EQ(log.ended.size(), 3u);
  EXPECT_EQ(log.ended[0].first, 2);
  EXPECT_EQ(log.ended[1].first, 3);
  EXPECT_EQ(log.ended[2].first, 1);
  EXPECT_EQ(log.ended[0].second.reason, Reason::kTimeout);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(a.e->waiters.load(), 0u);
  EXPECT_EQ(b.e->waiters.load(), 1u);
  EXPECT_EQ(q.head_cost(b.e), 1u);
}

TEST(WaitQueue, ServesFirstInFirstOutAndStopsAtTheFirstWaitTheBalanceCannotCover) {
  WaitQueue q;
  Key a("a");
  Log log;
  add(q, a.e, 3, milliseconds(100), log.note(1));
  add(q, a.e, 5, milliseconds(100), log.note(2));
  add(q, a.e, 1, milliseconds(100), log.note(3));  // fits, but stays behind the 5
  a.e->balance.store(7);

  Completions done;
  const WaitQueue::Served served = q.serve(a.e, done);
  complete(done);
  EXPECT_EQ(served.waits, 1u);
  EXPECT_EQ(served.tokens, 3u);
  ASSERT_EQ(log.ended.size(), 1u);
  EXPECT_EQ(log.ended[0].first, 1);
  EXPECT_TRUE(log.ended[0].second.allowed);
  EXPECT_EQ(log.ended[0].second.remaining, 4);
  EXPECT_EQ(a.e->balance.load(), 4);
  EXPECT_EQ(a.e->waiters.load(), 2u);
  EXPECT_EQ(q.head_cost(a.e), 5u);

  a.e->balance.store(6);
  a.e->fallback.store(kFallbackLocal);  // tokens of the local bucket say so
  done.clear();
  EXPECT_EQ(q.serve(a.e, done).waits, 2u);
  complete(done);
  ASSERT_EQ(log.ended.size(), 3u);
  EXPECT_EQ(log.ended[1].first, 2);
  EXPECT_EQ(log.ended[2].first, 3);
  EXPECT_EQ(log.ended[2].second.reason, Reason::kFallbackLocal);
  EXPECT_EQ(a.e->balance.load(), 0);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.head_cost(a.e), 0u);
}

TEST(WaitQueue, AServedOrCancelledWaitDoesNotEndAgainAtItsDeadline) {
  WaitQueue q;
  Key a("a");
  Log log;
  add(q, a.e, 1, milliseconds(10), log.note(1));
  const WaitId second = add(q, a.e, 1, milliseconds(10), log.note(2));
  add(q, a.e, 1, milliseconds(10), log.note(3));
  a.e->balance.store(1);
  Completions done;
  q.serve(a.e, done);  // the first
  Limiter::Completion cancelled;
  ASSERT_TRUE(q.cancel(second, cancelled));
  EXPECT_FALSE(q.cancel(second, cancelled));  // once
  cancelled(Decision{false, Reason::kCancelled, 0, Nanos{0}});
  EXPECT_EQ(q.expire(Nanos{milliseconds(10)}, timeout, done), 1u);  // only the third
  complete(done);
  ASSERT_EQ(log.ended.size(), 3u);
  EXPECT_EQ(log.ended[0].first, 2);
  EXPECT_EQ(log.ended[1].first, 1);
  EXPECT_EQ(log.ended[2].first, 3);
  EXPECT_EQ(log.ended[2].second.reason, Reason::kTimeout);
  EXPECT_EQ(a.e->waiters.load(), 0u);
}

TEST(WaitQueue, FinishingAKeyEndsAllItsWaitsInOrderWithTheDecisionGiven) {
  WaitQueue q;
  Key a("a"), b("b");
  Log log;
  add(q, a.e, 2, milliseconds(10), log.note(1));
  add(q, b.e, 1, milliseconds(10), log.note(2));
  add(q, a.e, 4, milliseconds(10), log.note(3));
  Completions done;
  std::uint64_t costs = 0;
  q.finish_key(
      a.e,
      [&](const Waiter& w) {
        costs += w.cost;
        return Decision{true, Reason::kFallbackAllow, 0, Nanos{0}};
      },
      done);
  complete(done);
  ASSERT_EQ(log.ended.size(), 2u);
  EXPECT_EQ(log.ended[0].first, 1);
  EXPECT_EQ(log.ended[1].first, 3);
  EXPECT_EQ(log.ended[1].second.reason, Reason::kFallbackAllow);
  EXPECT_EQ(costs, 6u);
  EXPECT_EQ(a.e->waiters.load(), 0u);
  EXPECT_EQ(q.size(), 1u);  // b's
  done.clear();
  EXPECT_EQ(q.expire(Nanos{milliseconds(10)}, timeout, done), 1u);  // a's deadlines are gone
}

TEST(WaitQueue, AKeyThatLeftTheTableOrIsFullTakesNoWaiter) {
  WaitQueue q;
  Key a("a");
  Log log;
  add(q, a.e, 1, milliseconds(10), log.note(1), 2);
  add(q, a.e, 1, milliseconds(10), log.note(2), 2);
  Limiter::Completion third = log.note(3);
  WaitId id = 0;
  EXPECT_EQ(q.add(a.e, 1, Nanos{milliseconds(10)}, 2, third, id), WaitQueue::Added::kFull);
  EXPECT_TRUE(third);  // left to the caller

  // Eviction: refused while the key has waits, then the key leaves the table under the lock.
  bool unlinked = false;
  EXPECT_FALSE(q.close_if_idle(a.e, [&] { unlinked = true; }));
  EXPECT_FALSE(unlinked);
  Completions done;
  q.finish_key(a.e, timeout, done, [&] { a.e->retired.store(true); });
  EXPECT_EQ(done.size(), 2u);
  EXPECT_TRUE(q.close_if_idle(a.e, [&] { unlinked = true; }));
  EXPECT_TRUE(unlinked);
  EXPECT_EQ(q.add(a.e, 1, Nanos{milliseconds(10)}, 2, third, id), WaitQueue::Added::kRetired);
  EXPECT_TRUE(third);
  EXPECT_EQ(q.size(), 0u);
}

TEST(WaitQueue, FinishingAllEndsEveryWaitOnce) {
  WaitQueue q;
  Key a("a"), b("b");
  Log log;
  add(q, a.e, 1, milliseconds(10), log.note(1));
  add(q, b.e, 1, milliseconds(20), log.note(2));
  Completions done;
  q.finish_all([](const Waiter&) { return Decision{false, Reason::kShutdown, 0, Nanos{0}}; }, done);
  complete(done);
  EXPECT_EQ(log.ended.size(), 2u);
  EXPECT_EQ(a.e->waiters.load(), 0u);
  EXPECT_EQ(b.e->waiters.load(), 0u);
  done.clear();
  EXPECT_EQ(q.expire(Nanos{milliseconds(20)}, timeout, done), 0u);
  EXPECT_EQ(q.size(), 0u);
}

}  // namespace
}  // namespace tollgate::core
