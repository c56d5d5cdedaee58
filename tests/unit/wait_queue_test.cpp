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
  std::vector<int> order() const {
    std::vector<int> tags;
    for (const auto& [tag, d] : ended) tags.push_back(tag);
    return tags;
  }
};

// A queue, two keys and the log of the waits that ended.
struct WaitQueueTest : ::testing::Test {
  Key a{"a"}, b{"b"};  // before the queue: it may hold their entries until it is gone
  WaitQueue q;
  Log log;
  // Queues wait `tag` for `cost` tokens of `e` until `deadline` (milliseconds).
  WaitId add(Entry* e, std::uint64_t cost, int deadline, int tag, std::size_t max_per_key = 100) {
    WaitId id = 0;
    Limiter::Completion done = log.note(tag);
    EXPECT_EQ(q.add(e, cost, Nanos{milliseconds(deadline)}, max_per_key, done, id),
              WaitQueue::Added::kQueued);
    return id;
  }
};

Decision timeout(const Waiter&) {
  return Decision{false, Reason::kTimeout, 0, Nanos{0}};
}

TEST_F(WaitQueueTest, DeadlinesEndInTheirOrderNotTheOrderOfQueuing) {
  add(a.e, 1, 30, 1);
  add(b.e, 1, 10, 2);
  add(a.e, 1, 20, 3);
  add(b.e, 1, 40, 4);
  EXPECT_EQ(q.next_deadline(), Nanos{milliseconds(10)});

  Completions done;
  EXPECT_EQ(q.expire(Nanos{milliseconds(9)}, timeout, done), 0u);  // none due yet
  EXPECT_EQ(q.expire(Nanos{milliseconds(30)}, timeout, done), 3u);
  complete(done);
  EXPECT_EQ(log.order(), (std::vector<int>{2, 3, 1}));
  EXPECT_EQ(log.ended[0].second.reason, Reason::kTimeout);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(a.e->waiters.load(), 0u);
  EXPECT_EQ(b.e->waiters.load(), 1u);
  EXPECT_EQ(q.head_cost(b.e), 1u);
}

TEST_F(WaitQueueTest, ServesFirstInFirstOutAndStopsAtTheFirstWaitTheBalanceCannotCover) {
  add(a.e, 3, 100, 1);
  add(a.e, 5, 100, 2);
  add(a.e, 1, 100, 3);  // fits, but stays behind the 5
  a.e->balance.store(7);

  Completions done;
  const WaitQueue::Served served = q.serve(a.e, done);
  complete(done);
  EXPECT_EQ(served.waits, 1u);
  EXPECT_EQ(served.tokens, 3u);
  EXPECT_EQ(log.order(), (std::vector<int>{1}));
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
  EXPECT_EQ(log.order(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(log.ended[2].second.reason, Reason::kFallbackLocal);
  EXPECT_EQ(a.e->balance.load(), 0);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.head_cost(a.e), 0u);
}

TEST_F(WaitQueueTest, AServedOrCancelledWaitDoesNotEndAgainAtItsDeadline) {
  add(a.e, 1, 10, 1);
  const WaitId second = add(a.e, 1, 10, 2);
  add(a.e, 1, 10, 3);
  a.e->balance.store(1);
  Completions done;
  q.serve(a.e, done);  // the first
  Limiter::Completion cancelled;
  ASSERT_TRUE(q.cancel(second, cancelled));
  EXPECT_FALSE(q.cancel(second, cancelled));  // once
  cancelled(Decision{false, Reason::kCancelled, 0, Nanos{0}});
  EXPECT_EQ(q.expire(Nanos{milliseconds(10)}, timeout, done), 1u);  // only the third
  complete(done);
  EXPECT_EQ(log.order(), (std::vector<int>{2, 1, 3}));
  EXPECT_EQ(log.ended[2].second.reason, Reason::kTimeout);
  EXPECT_EQ(a.e->waiters.load(), 0u);
}

TEST_F(WaitQueueTest, FinishingAKeyEndsAllItsWaitsInOrderWithTheDecisionGiven) {
  add(a.e, 2, 10, 1);
  add(b.e, 1, 10, 2);
  add(a.e, 4, 10, 3);
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
  EXPECT_EQ(log.order(), (std::vector<int>{1, 3}));
  EXPECT_EQ(log.ended[1].second.reason, Reason::kFallbackAllow);
  EXPECT_EQ(costs, 6u);
  EXPECT_EQ(a.e->waiters.load(), 0u);
  EXPECT_EQ(q.size(), 1u);  // b's
  done.clear();
  EXPECT_EQ(q.expire(Nanos{milliseconds(10)}, timeout, done), 1u);  // a's deadlines are gone
}

TEST_F(WaitQueueTest, AKeyThatLeftTheTableOrIsFullTakesNoWaiter) {
  add(a.e, 1, 10, 1, 2);
  add(a.e, 1, 10, 2, 2);
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

TEST_F(WaitQueueTest, FinishingAllEndsEveryWaitOnce) {
  add(a.e, 1, 10, 1);
  add(b.e, 1, 20, 2);
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
