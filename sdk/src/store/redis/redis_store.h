// QuotaStore over Redis shards, in two layers:
//   RedisTransport  the shards as a resilience::ShardTransport: one pipelined connection per
//                   shard on one io_context thread it owns, the Lua scripts of lua/*.lua
//                   (loaded on connect, loaded again and resent after NOSCRIPT), group ->
//                   shard by jump hash ("type": "redis"); RedisClusterTransport
//                   (redis_cluster.h) is the other RedisShards, a Redis Cluster's primaries
//                   ("type": "redis_cluster")
//   RedisStore      that transport under a resilience::GuardedStore (bulkhead, circuit
//                   breaker and retry per shard, on the clock it is given; retries wait on
//                   an Asio timer of the transport's io_context)
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "resilience/guarded_store.h"
#include "store/redis/connection.h"
#include "store/redis/lease_calls.h"
#include "tollgate/quota_store.h"

namespace tollgate::redis {

// A ShardTransport over Redis servers on an io_context thread of its own: what RedisStore
// puts under its GuardedStore.
class RedisShards : public resilience::ShardTransport {
 public:
  // Where the connections' log lines go ("<url>: command timed out", "up again").
  void set_observer(std::shared_ptr<Observer> observer);
  // Fails what is in flight ("closed"), then stops and joins the io thread.
  virtual void close() = 0;
  virtual asio::io_context& io() noexcept = 0;

  struct Counters {
    std::uint64_t calls = 0;    // EVALSHA calls written (lease and give-back; NOSCRIPT resends too)
    std::uint64_t batches = 0;  // pipelined round trips
    std::uint64_t reloads = 0;  // scripts loaded again after NOSCRIPT
    std::uint64_t unreplicated = 0;     // pipelines whose WAIT saw too few replicas (wait_replicas)
    std::uint64_t redirects = 0;        // cluster: lease calls sent again after MOVED or ASK
    std::uint64_t cluster_retries = 0;  // cluster: calls sent again after TRYAGAIN/CLUSTERDOWN
    std::uint64_t topology_refreshes = 0;  // cluster: slot maps read
  };
  // The counts both transports keep (a cluster adds its own).
  virtual Counters counters() const noexcept;

 protected:
  std::shared_ptr<ObserverSlot> observer_ = std::make_shared<ObserverSlot>();
  std::atomic<std::uint64_t> calls_{0}, batches_{0}, reloads_{0}, unreplicated_{0};
};

// Thread-safe. Callbacks run on the io thread (or inline, with "closed", after close()).
class RedisTransport final : public RedisShards {
 public:
  // Throws ConfigError (field store.shards[i]) for a URL that does not parse.
  explicit RedisTransport(const StoreConfig& config);
  ~RedisTransport() override;

  std::size_t shard_count() const override { return shards_.size(); }
  std::size_t shard_of(const Policy& policy, std::string_view key) const override;
  std::string shard_name(std::size_t shard) const override;  // the redacted URL
  void send_leases(std::size_t shard, std::vector<const LeaseRequest*> requests,
                   std::function<void(resilience::ShardOutcome)> done) override;
  void send_give_backs(std::size_t shard, std::vector<GiveBack> batch) override;

  void close() override;
  asio::io_context& io() noexcept override { return io_; }

  // Keys one script run carries (lease and give-back scripts take many keys per call).
  static constexpr std::size_t kKeysPerScript = 256;

 private:
  struct Leases;
  void send_lease_commands(std::size_t shard, std::shared_ptr<Leases> leases,
                           std::vector<std::size_t> idx, bool reload);

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::shared_ptr<Connection>> shards_;
  std::size_t wait_replicas_ = 0;
  std::string wait_timeout_ms_;
  std::string lease_sha_;
  std::string give_back_sha_;
  std::once_flag closed_;
  std::thread thread_;
};

class RedisStore final : public QuotaStore {
 public:
  // The transport the config's type names ("redis" or "redis_cluster"). Throws
  // ConfigError (field store.shards[i], store.nodes[i]) for a URL that does not parse. The
  // breakers and retries time calls on `clock` (nullptr: the steady clock).
  explicit RedisStore(const StoreConfig& config, std::shared_ptr<const Clock> clock = nullptr);
  ~RedisStore() override;

  void lease(std::vector<LeaseRequest> batch, LeaseCallback done) override {
    guard_->lease(std::move(batch), std::move(done));
  }
  void give_back(std::vector<GiveBack> batch) override { guard_->give_back(std::move(batch)); }
  void set_observer(std::shared_ptr<Observer> observer) override;
  std::size_t partition_of(const LeaseRequest& request) const override {
    return guard_->partition_of(request);
  }
  std::vector<BreakerState> breaker_states() const override { return guard_->breaker_states(); }
  StoreStats stats() const override;  // the guard's bulkhead, breaker and retry counts

  std::size_t shard_count() const noexcept { return transport_->shard_count(); }
  resilience::BreakerState breaker_state(std::size_t shard) const {
    return guard_->breaker_state(shard);
  }
  // Which shard holds this key's group (tests, and the simulator's report).
  std::size_t shard_of(const Policy& policy, std::string_view key) const {
    return transport_->shard_of(policy, key);
  }

  struct Counters {
    std::uint64_t calls = 0;              // EVALSHA calls sent
    std::uint64_t batches = 0;            // pipelined round trips
    std::uint64_t failures = 0;           // keys answered with ok = false
    std::uint64_t reloads = 0;            // scripts loaded again after NOSCRIPT
    std::uint64_t retries = 0;            // batches sent again (same ids) after a transport failure
    std::uint64_t short_circuited = 0;    // keys failed at once: their shard's breaker is open
    std::uint64_t bulkhead_rejected = 0;  // keys refused at once: their shard's bulkhead full
    std::uint64_t most_in_flight = 0;     // the most keys on the wire to one shard at once
    std::uint64_t unreplicated = 0;       // pipelines whose WAIT saw too few replicas
    std::uint64_t redirects = 0;          // cluster: calls sent again after MOVED or ASK
    std::uint64_t cluster_retries = 0;    // cluster: calls sent again after TRYAGAIN/CLUSTERDOWN
    std::uint64_t topology_refreshes = 0;  // cluster: slot maps read
  };
  Counters counters() const noexcept;

 private:
  std::shared_ptr<RedisShards> transport_;
  std::shared_ptr<resilience::GuardedStore> guard_;
};

}  // namespace tollgate::redis
