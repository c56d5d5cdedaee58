// Test-only faults for the checks of the admission bound: a QuotaStore decorator that
// lies to the Limiter in one of three ways, so that each check of the bound (tests, the
// simulators) can be run once against a broken limiter and seen to fail. Nothing here is
// part of the SDK; it wraps whatever store a test or simulator builds, from outside.
//
//   double-grant   every grant is reported as twice what the store took (a store that
//                  grants twice what it takes). Give-backs are forwarded as the Limiter
//                  sends them, so the store may be credited with tokens it never issued:
//                  that can only make the fault larger.
//   tenfold-grant  as double-grant, ten times: sized for checks whose scenario keeps
//                  utilization far below the bound (the inference scenario's holds keep
//                  it at a third, so doubling it stays inside), where double proves nothing.
//   spend-expired  every grant's expiry is reported an hour later than the store's (a
//                  limiter that keeps spending leases past their expiry). Give-backs go
//                  to the store with the real expiry again, so the store's own state
//                  stays true; a concurrency reservation is never renewed (the Limiter
//                  thinks it has an hour), so the store lets it lapse while the holder
//                  keeps its permits.
//
// Thread-safety: as the wrapped store (the decorator keeps no state of its own).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tollgate/quota_store.h"

namespace tollgate::faults {

enum class Fault { kNone, kDoubleGrant, kTenfoldGrant, kSpendExpired };

// "none", "double-grant", "tenfold-grant", "spend-expired"; nullopt for anything else.
inline std::optional<Fault> parse_fault(std::string_view name) {
  if (name == "none") return Fault::kNone;
  if (name == "double-grant") return Fault::kDoubleGrant;
  if (name == "tenfold-grant") return Fault::kTenfoldGrant;
  if (name == "spend-expired") return Fault::kSpendExpired;
  return std::nullopt;
}

inline std::string_view to_string(Fault fault) {
  switch (fault) {
    case Fault::kNone:
      return "none";
    case Fault::kDoubleGrant:
      return "double-grant";
    case Fault::kTenfoldGrant:
      return "tenfold-grant";
    case Fault::kSpendExpired:
      return "spend-expired";
  }
  return "none";
}

// How far kSpendExpired pushes a grant's expiry.
inline constexpr Nanos kSpendExpiredExtension = std::chrono::hours(1);

class FaultyStore final : public QuotaStore {
 public:
  FaultyStore(std::shared_ptr<QuotaStore> inner, Fault fault)
      : inner_(std::move(inner)), fault_(fault) {}

  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override {
    inner_->lease(std::move(batch),
                  [fault = fault_, done = std::move(done)](std::vector<LeaseGrant> grants) {
                    for (auto& g : grants) {
                      if (!g.ok || g.granted == 0) continue;
                      if (fault == Fault::kDoubleGrant) g.granted *= 2;
                      if (fault == Fault::kTenfoldGrant) g.granted *= 10;
                      if (fault == Fault::kSpendExpired) g.expires_at += kSpendExpiredExtension;
                    }
                    done(std::move(grants));
                  });
  }

  void give_back(std::vector<GiveBack> batch) override {
    if (fault_ == Fault::kSpendExpired) {
      for (auto& b : batch) {
        if (b.expires_at > kSpendExpiredExtension) b.expires_at -= kSpendExpiredExtension;
      }
    }
    inner_->give_back(std::move(batch));
  }

  std::size_t partition_of(const LeaseRequest& request) const override {
    return inner_->partition_of(request);
  }
  void set_observer(std::shared_ptr<Observer> observer) override {
    inner_->set_observer(std::move(observer));
  }
  std::vector<BreakerState> breaker_states() const override { return inner_->breaker_states(); }

  Fault fault() const noexcept { return fault_; }
  const std::shared_ptr<QuotaStore>& inner() const noexcept { return inner_; }

 private:
  std::shared_ptr<QuotaStore> inner_;
  Fault fault_;
};

// `inner` itself for kNone; otherwise `inner` behind a FaultyStore.
inline std::shared_ptr<QuotaStore> with_fault(std::shared_ptr<QuotaStore> inner, Fault fault) {
  if (fault == Fault::kNone) return inner;
  return std::make_shared<FaultyStore>(std::move(inner), fault);
}

}  // namespace tollgate::faults
