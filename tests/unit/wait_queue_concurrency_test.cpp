// The wait queue (limiter/wait_queue.h) under threads: waits added, cancelled, served,
// expired and finished at once from several threads end exactly once each, and the keys'
// waiter counts come back to zero. Also run under TSan (scripts/test, stage tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "limiter/wait_queue.h"

namespace tollgate::core {
namespace {

TEST(WaitQueueConcurrency, EveryWaitEndsExactlyOnceWhateverEndsIt) {
  constexpr int kKeys = 4;
  constexpr int kAdders = 2;
  constexpr int kWaitsPerAdder = 20000;
  constexpr int kTotal = kAdders * kWaitsPerAdder;
  WaitQueue q;
  std::vector<Entry*> keys;
  for (int k = 0; k < kKeys; ++k) keys.push_back(Entry::create("k" + std::to_string(k), 1, 0));
  // ended[i]: how many times wait i's completion ran.
  std::unique_ptr<std::atomic<int>[]> ended(new std::atomic<int>[kTotal]);
  for (int i = 0; i < kTotal; ++i) ended[i] = 0;
  std::atomic<bool> adding{true};
  std::atomic<int> ready{0};  // every thread starts together
  constexpr int kThreads = kAdders + 3;
  auto start = [&] {
    ready.fetch_add(1);
    while (ready.load() < kThreads) std::this_thread::yield();
  };
  std::atomic<int> by_reason[kReasonCount] = {};
  std::atomic<std::int64_t> clock_ms{0};

  auto run = [](Completions& done) {
    complete(done);
    done.clear();
  };
  std::vector<std::thread> threads;
  for (int a = 0; a < kAdders; ++a) {
    threads.emplace_back([&, a] {
      start();
      std::mt19937 rng(a);
      for (int n = 0; n < kWaitsPerAdder; ++n) {
        const int tag = a * kWaitsPerAdder + n;
        Entry* e = keys[rng() % kKeys];
        Limiter::Completion done = [&, tag](const Decision& d) {
          ended[tag].fetch_add(1);
          by_reason[static_cast<int>(d.reason)].fetch_add(1);
        };
        WaitId id = 0;
        const Nanos deadline{std::chrono::milliseconds(clock_ms.load() + rng() % 20)};
        if (q.add(e, 1 + rng() % 3, deadline, 1'000'000, done, id) != WaitQueue::Added::kQueued) {
          done(Decision{});  // refused: the caller completes it
          continue;
        }
        if (rng() % 4 == 0) {  // a quarter cancelled, if still queued
          Limiter::Completion c;
          if (q.cancel(id, c)) c(Decision{false, Reason::kCancelled, 0, Nanos{0}});
        }
      }
    });
  }
  threads.emplace_back([&] {  // tokens arrive and serve the queues
    start();
    Completions done;
    for (int i = 0; adding.load(); ++i) {
      Entry* e = keys[i % kKeys];
      e->balance.fetch_add(2);
      q.serve(e, done);
      run(done);
    }
  });
  threads.emplace_back([&] {  // time passes: deadlines end waits
    start();
    Completions done;
    while (adding.load()) {
      const std::int64_t now = clock_ms.fetch_add(1) + 1;
      q.expire(
          Nanos{std::chrono::milliseconds(now)},
          [](const Waiter&) {
            return Decision{false, Reason::kTimeout, 0, Nanos{0}};
          },
          done);
      run(done);
    }
  });
  threads.emplace_back([&] {  // now and then a key's fallback finishes its waits
    start();
    Completions done;
    for (int i = 0; adding.load(); ++i) {
      q.finish_key(
          keys[i % kKeys],
          [](const Waiter&) {
            return Decision{true, Reason::kFallbackAllow, 0, Nanos{0}};
          },
          done);
      run(done);
      std::this_thread::yield();
    }
  });
  for (int a = 0; a < kAdders; ++a) threads[a].join();
  adding.store(false);
  for (std::size_t t = kAdders; t < threads.size(); ++t) threads[t].join();
  Completions done;
  q.finish_all([](const Waiter&) { return Decision{false, Reason::kShutdown, 0, Nanos{0}}; }, done);
  run(done);

  int once = 0;
  for (int i = 0; i < kTotal; ++i) {
    EXPECT_EQ(ended[i].load(), 1) << "wait " << i;
    once += ended[i].load() == 1;
  }
  EXPECT_EQ(once, kTotal);
  // How they ended (scheduling decides the mix; nothing asserted on it).
  for (Reason r : {Reason::kOk, Reason::kTimeout, Reason::kCancelled, Reason::kFallbackAllow,
                   Reason::kShutdown}) {
    ::testing::Test::RecordProperty(std::string(to_string(r)),
                                    by_reason[static_cast<int>(r)].load());
  }
  EXPECT_EQ(q.size(), 0u);
  for (Entry* e : keys) {
    EXPECT_EQ(e->waiters.load(), 0u);
    Entry::destroy(e);
  }
}

}  // namespace
}  // namespace tollgate::core
