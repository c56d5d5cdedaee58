// Reservations (Limiter::reserve, Reservation::settle) against a scripted store and a
// simulated clock: refunds, extra charges, debt carried across leases and denied in_debt,
// dropped reservations, max_overage, and bad input that changes nothing.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tollgate/tollgate.hpp"

namespace tollgate {
namespace {

using namespace std::chrono_literals;

// Keeps every lease call for the test to answer.
class ScriptedStore final : public QuotaStore {
 public:
  struct Call {
    std::vector<LeaseRequest> batch;
    LeaseCallback done;
  };
  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override {
    calls.push_back({std::move(batch), std::move(done)});
  }
  void give_back(std::vector<GiveBack> batch) override {
    for (auto& g : batch) (g.debt ? debts : g.late ? late : given_back) += g.tokens;
  }
  std::vector<Call> calls;
  std::uint64_t given_back = 0;
  std::uint64_t late = 0;   // GiveBack::late: refunds whose lease had ended
  std::uint64_t debts = 0;  // GiveBack::debt: charged to the bucket
};

Config reserve_config(std::optional<std::uint64_t> max_overage = std::nullopt) {
  Config c;
  Policy p;
  p.name = "tenants";
  p.match = "tenant:*";
  p.rate = 1000;
  p.burst = 1000;
  p.max_overage = max_overage;
  c.policies.push_back(p);
  c.leases.ttl = 2s;
  c.leases.horizon = 200ms;
  c.leases.max_fraction = 0.5;  // leases of at most 500
  c.leases.refresh = 0ms;
  c.instance_id = "test-instance";
  return c;
}

class ReservationTest : public ::testing::Test {
 protected:
  void make(Config c) {
    store = std::make_shared<ScriptedStore>();
    clock = std::make_shared<ManualClock>();
    limiter.emplace(
        std::move(c),
        Limiter::Options{
            .store = store, .clock = clock, .background_thread = false, .observer = {}});
  }
  // Answers the oldest lease call: every key granted `granted`, or (wait > 0) told when
  // its `min` will be there.
  void answer(std::uint64_t granted, Nanos wait = 0ns) {
    ASSERT_FALSE(store->calls.empty());
    ScriptedStore::Call call = std::move(store->calls.front());
    store->calls.erase(store->calls.begin());
    std::vector<LeaseGrant> grants(call.batch.size());
    for (LeaseGrant& g : grants) {
      g.granted = granted;
      g.now = clock->now();
      g.expires_at = clock->now() + 2s;
      g.remaining = 1'000'000;
      g.wait_until = clock->now() + wait;
    }
    call.done(std::move(grants));
    limiter->poll();
  }
  // tenant:a holding a lease of `tokens`.
  void lease(std::uint64_t tokens) {
    (void)limiter->try_acquire("tenant:a", 1);
    limiter->poll();
    answer(tokens);
    ASSERT_TRUE(limiter->try_acquire("tenant:a", 2).allowed);  // 2 spent: tokens - 2 left
  }
  std::int64_t balance() {
    const Decision d = limiter->try_acquire("tenant:a", 1);
    EXPECT_TRUE(d.allowed) << to_string(d.reason);
    return d.remaining + 1;  // before this one
  }

  std::shared_ptr<ScriptedStore> store;
  std::shared_ptr<ManualClock> clock;
  std::optional<Limiter> limiter;  // last: destroyed first
};

TEST_F(ReservationTest, SettlingNothingRefundsTheWholeEstimate) {
  make(reserve_config());
  lease(500);  // 498 left
  Reservation r = limiter->reserve("tenant:a", 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.decision().remaining, 398);
  const Settlement s = r.settle(0);
  ASSERT_TRUE(s);
  EXPECT_EQ(s.charged, 0u);
  EXPECT_EQ(s.refunded, 100u);
  EXPECT_EQ(s.debt, 0u);
  EXPECT_FALSE(r.pending());
  EXPECT_EQ(balance(), 498);
  const Stats st = limiter->stats();
  EXPECT_EQ(st.reserved, 1u);
  EXPECT_EQ(st.settled_under, 1u);
  EXPECT_EQ(st.settled_over, 0u);
}

TEST_F(ReservationTest, SettlingUnderTheEstimateRefundsTheDifference) {
  make(reserve_config());
  lease(500);
  Reservation r = limiter->reserve("tenant:a", 100);
  ASSERT_TRUE(r);
  const Settlement s = r.settle(30);
  EXPECT_EQ(s.charged, 30u);
  EXPECT_EQ(s.refunded, 70u);
  EXPECT_EQ(balance(), 498 - 30);
}

TEST_F(ReservationTest, SettlingAtTheEstimateChangesNothing) {
  make(reserve_config());
  lease(500);
  Reservation r = limiter->reserve("tenant:a", 100);
  const Settlement s = r.settle(100);
  EXPECT_EQ(s.charged, 100u);
  EXPECT_EQ(s.refunded + s.debt + s.uncharged, 0u);
  EXPECT_EQ(balance(), 398);
  const Stats st = limiter->stats();
  EXPECT_EQ(st.settled_under + st.settled_over, 0u);
}

TEST_F(ReservationTest, SettlingOverTheEstimateChargesTheExtraFromTheBalance) {
  make(reserve_config());
  lease(500);
  Reservation r = limiter->reserve("tenant:a", 100);
  const Settlement s = r.settle(300);
  EXPECT_EQ(s.charged, 300u);
  EXPECT_EQ(s.debt, 0u);
  EXPECT_EQ(balance(), 498 - 300);
  EXPECT_EQ(limiter->stats().settled_over, 1u);
  EXPECT_EQ(limiter->stats().debt_tokens, 0u);
}

TEST_F(ReservationTest, DebtIsDeniedInDebtAndPaidAcrossTwoLeases) {
  make(reserve_config());
  lease(150);  // 148 left
  Reservation r = limiter->reserve("tenant:a", 100);
  ASSERT_TRUE(r);
  const Settlement s = r.settle(800);  // 700 extra, 48 of them in the balance
  EXPECT_EQ(s.charged, 800u);
  EXPECT_EQ(s.debt, 652u);
  EXPECT_EQ(limiter->stats().debt_tokens, 652u);
  Decision d = limiter->try_acquire("tenant:a", 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Reason::kInDebt);
  EXPECT_GT(d.retry_after.count(), 0);
  // The next ask carries the debt on top of the need, at most a lease (500) of it.
  limiter->poll();
  ASSERT_EQ(store->calls.size(), 1u);
  EXPECT_EQ(store->calls[0].batch[0].min, 501u);
  answer(501);  // pays 501 of the 652
  EXPECT_EQ(limiter->try_acquire("tenant:a", 1).reason, Reason::kInDebt);
  limiter->poll();  // asked again at once for the rest
  ASSERT_EQ(store->calls.size(), 1u);
  EXPECT_EQ(store->calls[0].batch[0].min, 152u) << "what is left of the debt, and the need";
  answer(200);  // pays the last 151: 49 spendable
  EXPECT_EQ(balance(), 49);
  EXPECT_EQ(store->debts, 0u) << "the leases paid it all: nothing to report";
}

TEST_F(ReservationTest, AKeyInDebtAsksAtOnceWhenItsCallCarriesAHundredTokens) {
  Config c = reserve_config();
  c.leases.refresh = 2s;  // a call that can wait goes with the shard's next one
  make(c);
  lease(500);  // 498 left
  ASSERT_TRUE(store->calls.empty());
  Reservation r = limiter->reserve("tenant:a", 400);  // a new Limiter holds it whole
  ASSERT_TRUE(r);
  ASSERT_EQ(r.settle(1000).debt, 502u);  // 600 beyond what it held, 98 in the balance
  limiter->poll();                       // the clock stands still: no shard call is due
  ASSERT_EQ(store->calls.size(), 1u) << "in debt, and the call carries 100 tokens or more";
  EXPECT_EQ(store->calls[0].batch[0].min, 501u) << "the debt (at most a lease, 500) and the need";
}

TEST_F(ReservationTest, ADebtTheStoreCannotPayIsReportedToItsBucket) {
  make(reserve_config());
  lease(150);
  Reservation r = limiter->reserve("tenant:a", 100);
  EXPECT_EQ(r.settle(300).debt, 152u);
  limiter->poll();
  ASSERT_EQ(store->calls.size(), 1u);
  EXPECT_EQ(store->calls[0].batch[0].min, 153u);
  // The store grants 100 of the 153 and says the rest will be there in 300 ms: the grant
  // pays 100, the other 52 go to the store's bucket, which pays them back from its refill.
  answer(100, 300ms);
  EXPECT_EQ(store->debts, 52u);
  Decision d = limiter->try_acquire("tenant:a", 1);
  EXPECT_EQ(d.reason, Reason::kInDebt);
  EXPECT_GE(d.retry_after, 299ms);
  clock->advance(300ms);
  limiter->poll();
  ASSERT_EQ(store->calls.size(), 1u);
  EXPECT_EQ(store->calls[0].batch[0].min, 1u) << "the store counts the debt now";
  answer(100);
  EXPECT_EQ(balance(), 100);
  EXPECT_EQ(store->debts, 52u);
}

TEST_F(ReservationTest, ADebtLeftAtShutdownIsReportedToTheStore) {
  make(reserve_config());
  lease(150);  // 148 left
  Reservation r = limiter->reserve("tenant:a", 100);
  EXPECT_EQ(r.settle(800).debt, 652u);
  EXPECT_EQ(store->debts, 0u);
  limiter.reset();  // no lease call in flight: nothing else would pay it
  EXPECT_EQ(store->debts, 652u) << "the debt is charged to the store's bucket, not lost";
  EXPECT_EQ(store->given_back, 0u);
}

TEST_F(ReservationTest, ADebtALeaseCallCarriesIsNotReportedTwiceAtShutdown) {
  make(reserve_config());
  lease(150);
  Reservation r = limiter->reserve("tenant:a", 100);
  EXPECT_EQ(r.settle(800).debt, 652u);
  limiter->poll();  // the next ask carries 500 of the debt
  ASSERT_EQ(store->calls.size(), 1u);
  limiter.reset();  // its grant, whatever the store decides, is what pays the debt
  EXPECT_EQ(store->debts, 0u);
}

TEST_F(ReservationTest, ADroppedReservationIsSettledAtTheEstimate) {
  make(reserve_config());
  lease(500);
  {
    Reservation r = limiter->reserve("tenant:a", 100);
    ASSERT_TRUE(r);
    Reservation moved = std::move(r);
    EXPECT_FALSE(r.pending());
    EXPECT_TRUE(moved.pending());
  }
  EXPECT_EQ(balance(), 398);
  const Stats st = limiter->stats();
  EXPECT_EQ(st.reserved, 1u);
  EXPECT_EQ(st.settled_under + st.settled_over, 0u);
}

TEST_F(ReservationTest, SettleChargesAtMostMaxOverageBeyondTheEstimate) {
  make(reserve_config(50));
  lease(500);
  Reservation r = limiter->reserve("tenant:a", 100);
  const Settlement s = r.settle(300);
  EXPECT_EQ(s.charged, 150u);
  EXPECT_EQ(s.uncharged, 150u);
  EXPECT_EQ(balance(), 498 - 150);
}

TEST_F(ReservationTest, BadEstimatesAndActualsAreRejectedWithoutTouchingState) {
  make(reserve_config());
  // A key never seen: no entry is created for a bad estimate.
  EXPECT_EQ(limiter->reserve("tenant:b", 0).decision().reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->reserve("tenant:b", UINT64_MAX).decision().reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->reserve("tenant:b", 1001).decision().reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->stats().keys_tracked, 0u);
  lease(500);
  EXPECT_EQ(limiter->reserve("tenant:a", 0).decision().reason, Reason::kInvalidArgument);
  EXPECT_EQ(limiter->reserve("tenant:a", UINT64_MAX).decision().reason, Reason::kInvalidArgument);
  Reservation r = limiter->reserve("tenant:a", 100);
  ASSERT_TRUE(r);
  const Settlement bad = r.settle(UINT64_MAX);
  EXPECT_EQ(bad.reason, Reason::kInvalidArgument);
  EXPECT_EQ(bad.charged, 0u);
  EXPECT_TRUE(r.pending()) << "a rejected settle leaves the reservation as it was";
  EXPECT_EQ(limiter->stats().settled_over, 0u);
  EXPECT_EQ(r.settle(100).charged, 100u);
  EXPECT_EQ(r.settle(0).reason, Reason::kInvalidArgument) << "settled once only";
  EXPECT_EQ(balance(), 398);
  EXPECT_EQ(limiter->stats().reserved, 1u);
}

TEST_F(ReservationTest, ARefundWhoseLeaseEndedGoesToTheStoresBucket) {
  make(reserve_config());
  lease(500);
  Reservation r = limiter->reserve("tenant:a", 100);
  clock->advance(3s);  // the lease (2 s) expires: its unspent tokens go back
  limiter->poll();
  const std::uint64_t returned = store->given_back;
  // (The lease's unspent tokens, past its expiry in the store, are dropped unsent: expired.)
  const std::uint64_t expired = limiter->stats().tokens_expired;
  const Settlement s = r.settle(0);
  EXPECT_EQ(s.refunded, 0u);
  EXPECT_EQ(s.dropped, 100u) << "tokens of an expired lease must not be spent here again";
  const Decision d = limiter->try_acquire("tenant:a", 1);
  EXPECT_FALSE(d.allowed);
  limiter->poll();
  EXPECT_EQ(store->late, 100u) << "but the store's bucket takes them back, up to its burst";
  EXPECT_EQ(store->given_back, returned);
  EXPECT_EQ(limiter->stats().tokens_expired, expired) << "the refund is not lost";
}

TEST_F(ReservationTest, ARefundFromTheNewerLeaseOutlivesTheOlderOnesEnd) {
  make(reserve_config());
  lease(500);  // expires at 2 s (less the expiry margin)
  clock->advance(1s);
  ASSERT_TRUE(limiter->try_acquire("tenant:a", 400).allowed);
  ASSERT_FALSE(limiter->try_acquire("tenant:a", 600).allowed);  // asks for a refill
  limiter->poll();
  ASSERT_EQ(store->calls.size(), 1u);
  answer(300);                                                // the newer lease, until 3 s
  ASSERT_TRUE(limiter->try_acquire("tenant:a", 98).allowed);  // the older one is spent
  Reservation r = limiter->reserve("tenant:a", 100);          // all from the newer lease
  ASSERT_TRUE(r);
  clock->advance(1500ms);  // the older lease ends (nothing of it left)
  limiter->poll();
  const Settlement s = r.settle(0);
  EXPECT_EQ(s.refunded, 100u) << "its lease is still held";
  EXPECT_EQ(s.dropped, 0u);
  // The newer lease is the only one now; a reservation from it loses its refund once it ends.
  // (It holds less than its estimate: the settle at 0 above taught the limiter.)
  Reservation again = limiter->reserve("tenant:a", 100);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.held(), 97u);
  clock->advance(1s);
  limiter->poll();
  EXPECT_EQ(again.settle(0).dropped, 97u);
}

TEST_F(ReservationTest, AReserveHoldsWhatSettlesShowedOfTheirEstimates) {
  Config c = reserve_config();
  c.policies[0].rate = c.policies[0].burst = 10'000'000;  // room for the settles below
  make(c);
  lease(1'000'000);
  Reservation first = limiter->reserve("tenant:a", 100);
  EXPECT_EQ(first.held(), 100u) << "the whole estimate until a settle shows less";
  (void)first.settle(100);
  for (int i = 0; i < 200; ++i) (void)limiter->reserve("tenant:a", 100).settle(30);
  Reservation r = limiter->reserve("tenant:a", 100);
  ASSERT_TRUE(r);
  EXPECT_NEAR(static_cast<double>(r.held()), 30, 2) << "an EWMA of actual / estimate";
  EXPECT_EQ(r.estimate(), 100u);
  const std::int64_t before = r.decision().remaining;
  // Over what it holds: the extra comes from the balance, as an extra beyond an estimate did.
  const Settlement s = r.settle(100);
  EXPECT_EQ(s.charged, 100u);
  EXPECT_EQ(s.refunded, 0u);
  EXPECT_EQ(s.debt, 0u);
  EXPECT_EQ(balance(), before - static_cast<std::int64_t>(100 - r.held()));
  // Costs of nothing: holds go down to a sixteenth of the estimate, never to 0.
  for (int i = 0; i < 500; ++i) (void)limiter->reserve("tenant:a", 160).settle(0);
  EXPECT_EQ(limiter->reserve("tenant:a", 160).held(), 10u);
  EXPECT_EQ(limiter->reserve("tenant:a", 1).held(), 1u);
  // Costs above the estimate count as the estimate: holds never exceed it.
  for (int i = 0; i < 500; ++i) {
    Reservation big = limiter->reserve("tenant:a", 10);
    ASSERT_TRUE(big);
    ASSERT_EQ(big.settle(40).debt, 0u);
  }
  EXPECT_EQ(limiter->reserve("tenant:a", 100).held(), 100u);
}

TEST_F(ReservationTest, AShortBalanceIsHeldWhole) {
  make(reserve_config());
  lease(500);                                                  // 498 left
  ASSERT_TRUE(limiter->try_acquire("tenant:a", 497).allowed);  // 1 left
  Reservation r = limiter->reserve("tenant:a", 200);           // would hold 200
  ASSERT_TRUE(r) << "a positive balance short of the hold is held whole";
  EXPECT_EQ(r.held(), 1u);
  EXPECT_EQ(r.decision().remaining, 0);
  const Settlement s = r.settle(100);
  EXPECT_EQ(s.charged, 100u);
  EXPECT_EQ(s.debt, 99u) << "the rest beyond what it held, and the balance is empty";
}

TEST_F(ReservationTest, AnEmptyBalanceIsDenied) {
  make(reserve_config());
  lease(500);
  ASSERT_TRUE(limiter->try_acquire("tenant:a", 498).allowed);  // 0 left
  Reservation r = limiter->reserve("tenant:a", 200);
  EXPECT_FALSE(r) << "nothing to hold: denied like try_acquire";
  EXPECT_EQ(r.decision().reason, limiter->try_acquire("tenant:a", 1).reason);
}

TEST_F(ReservationTest, PermitsAreNotReserved) {
  Config c = reserve_config();
  Policy p;
  p.name = p.match = "gpu:*";
  p.kind = PolicyKind::kConcurrency;
  p.limit = 4;
  c.policies.push_back(p);
  make(c);
  EXPECT_EQ(limiter->reserve("gpu:a", 1).decision().reason, Reason::kInvalidArgument);
}

TEST_F(ReservationTest, TheWaitingFormWaitsForTheEstimate) {
  make(reserve_config());
  Reservation r = limiter->reserve("tenant:a", 100, 0ms);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.decision().reason, Reason::kTimeout);
  limiter->poll();
  answer(500);
  r = limiter->reserve("tenant:a", 100, 1s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.decision().remaining, 400);
  EXPECT_EQ(r.settle(40).refunded, 60u);
  EXPECT_EQ(balance(), 460);
}

TEST_F(ReservationTest, TheAsyncFormCompletesWithTheReservation) {
  make(reserve_config());
  std::optional<Reservation> got;
  const WaitId id = limiter->reserve_async("tenant:a", 100, 1s,
                                           [&](Reservation r) { got.emplace(std::move(r)); });
  EXPECT_NE(id, 0u);
  EXPECT_FALSE(got.has_value());
  limiter->poll();
  answer(500);
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(*got);
  EXPECT_EQ(got->settle(10).refunded, 90u);
  EXPECT_EQ(balance(), 490);
  // Denied at once: completes inline with an empty reservation.
  std::optional<Reservation> bad;
  EXPECT_EQ(
      limiter->reserve_async("tenant:a", 0, 1s, [&](Reservation r) { bad.emplace(std::move(r)); }),
      0u);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->decision().reason, Reason::kInvalidArgument);
}

TEST(ReservationConfig, MaxOverageIsReadAndChecked) {
  const Config c = Config::from_json(
      R"({"policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 10,
                        "max_overage": 25}]})");
  ASSERT_TRUE(c.policies[0].max_overage.has_value());
  EXPECT_EQ(*c.policies[0].max_overage, 25u);
  EXPECT_EQ(c.policies[0].overage_cap(), 25u);
  const auto field_of = [](const char* json) {
    try {
      (void)Config::from_json(json);
    } catch (const ConfigError& e) {
      return e.field();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(field_of(R"({"policies": [{"match": "gpu:*", "type": "concurrency", "limit": 4,
                                       "max_overage": 1}]})"),
            "policies[0].max_overage");
  EXPECT_EQ(field_of(R"({"policies": [{"match": "t:*", "type": "token_bucket", "rate": 10,
                                       "max_overage": 4294967296}]})"),
            "policies[0].max_overage");
  EXPECT_EQ(field_of(R"({"policies": [{"match": "t:*", "type": "token_bucket", "rate": 10,
                                       "max_overage": -1}]})"),
            "policies[0].max_overage");
}

}  // namespace
}  // namespace tollgate
