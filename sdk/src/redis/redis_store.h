// QuotaStore over Redis shards: the Lua scripts of lua/*.lua, one pipelined connection
// per shard on one io_context thread the store owns, group -> shard by jump hash.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redis/connection.h"
#include "resilience/circuit_breaker.h"
#include "tollgate/quota_store.h"

namespace tollgate::redis {

class RedisStore final : public QuotaStore {
 public:
  // Throws ConfigError (field store.shards[i]) for a URL that does not parse.
  explicit RedisStore(const StoreConfig& config);
  ~RedisStore() override;

  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override;
  void give_back(std::vector<GiveBack> batch) override;
  void set_observer(std::shared_ptr<Observer> observer) override;
  std::size_t partition_of(const LeaseRequest& request) const override {
    return request.policy ? shard_of(*request.policy, request.key) : 0;
  }
  std::vector<BreakerState> breaker_states() const override;
  StoreStats stats() const override;  // from counters()

  std::size_t shard_count() const noexcept { return shards_.size(); }
  resilience::BreakerState breaker_state(std::size_t shard) const {
    return breakers_[shard]->state();
  }
  // Which shard holds this key's group (tests, and the simulator's report).
  std::size_t shard_of(const Policy& policy, std::string_view key) const;

  struct Counters {
    std::uint64_t calls = 0;              // EVALSHA calls sent
    std::uint64_t batches = 0;            // pipelined round trips
    std::uint64_t failures = 0;           // keys answered with ok = false
    std::uint64_t reloads = 0;            // scripts loaded again after NOSCRIPT
    std::uint64_t retries = 0;            // batches sent again (same ids) after a transport failure
    std::uint64_t short_circuited = 0;    // keys failed at once: their shard's breaker is open
    std::uint64_t bulkhead_rejected = 0;  // keys refused at once: their shard's bulkhead full
    std::uint64_t most_in_flight = 0;     // the most keys on the wire to one shard at once
  };
  Counters counters() const noexcept;

 private:
  struct Call;
  void send_leases(std::size_t shard, std::shared_ptr<Call> call, std::vector<std::size_t> idx,
                   int attempt, bool retried, std::size_t slots);
  // The bulkhead: admit a shard's part of a call (send, queue or refuse), and give its
  // slots back when it is answered (which starts queued parts).
  void admit(std::size_t shard, const std::shared_ptr<Call>& call, std::vector<std::size_t> idx);
  void part_done(std::size_t shard, std::size_t slots, const std::shared_ptr<Call>& call);

  struct Gate {
    std::mutex mu;
    std::size_t in_flight = 0;  // keys on the wire
    std::size_t queued = 0;     // keys waiting
    std::size_t most_in_flight = 0;
    std::deque<std::pair<std::shared_ptr<Call>, std::vector<std::size_t>>> queue;
  };
  BulkheadConfig bulkhead_;
  std::vector<std::unique_ptr<Gate>> gates_;  // one per shard

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::shared_ptr<Connection>> shards_;
  std::vector<std::unique_ptr<resilience::CircuitBreaker>> breakers_;  // one per shard
  // Read on the io thread and by breakers on any thread; set once by the Limiter.
  struct ObserverSlot {
    std::mutex mu;
    std::shared_ptr<Observer> observer;
    std::shared_ptr<Observer> get() {
      std::lock_guard lk(mu);
      return observer;
    }
  };
  std::shared_ptr<ObserverSlot> observer_ = std::make_shared<ObserverSlot>();
  std::string lease_sha_;
  std::string give_back_sha_;
  std::atomic<std::uint64_t> calls_{0}, batches_{0}, failures_{0}, reloads_{0}, retries_{0},
      short_circuited_{0}, bulkhead_rejected_{0};
  std::thread thread_;
};

}  // namespace tollgate::redis
