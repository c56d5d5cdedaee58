// A Redis Cluster's primaries as a resilience::ShardTransport, so that RedisStore puts a
// bulkhead, a breaker and retries per primary over them (the same GuardedStore as shards).
//
// Routing. A lease goes to the primary that owns its group's slot (CRC16 of the escaped
// group: every key of a group, bucket, request records and budget, is in that slot).
// The slot map is read with CLUSTER SHARDS (CLUSTER SLOTS where the server is older) at
// the first call, every kTopologyPeriod, after MOVED, CLUSTERDOWN or a connection lost,
// and at most every kMinRefreshGap. A call is routed by the map when it is sent (also a
// retry), not when the GuardedStore split it, so a retry after a failover goes to the
// new primary.
//   MOVED     the slot's owner in the map is updated and the lease is sent there
//   ASK       sent once more to the node named, after ASKING (a slot being migrated);
//             the map stays
//   TRYAGAIN, CLUSTERDOWN
//             sent again after kClusterRetryDelay · 2^n · (1 + u), u in [0, 0.2), up to
//             kClusterRetries times (25 + 50 + 100 + 200 ms: under the breaker's default
//             slow-call duration, so a slot in migration does not open it); then the key
//             fails (ok = false) and its policy's fallback decides
//   NOSCRIPT  the script is loaded again on that primary and the lease resent (the
//             scripts are also loaded on every connect)
// At most kMaxHops redirections per lease. Every resend carries the same request id: a
// lease that ran is answered from its remembered answer, which lives in the same slot
// (tg:{group}:r:…) and so moves and fails over with the bucket.
//
// Shard indices. The GuardedStore's shard count is fixed when it is made; a cluster's
// primaries are not. So there are kMaxPrimaries indices, and a primary gets one when it
// is first seen owning slots (by host:port). When a new primary appears and all are
// taken, the index of a node that owns no slot is given to it (the longest without);
// a cluster with more than kMaxPrimaries primaries leaves the slots beyond that unrouted
// (their keys fail and fall back), and says so in the log. A replica promoted in a
// failover is a new address: it gets its own index and so a breaker of its own, closed.
//
// Thread-safe. Callbacks run on the io thread (or never, after close()).
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/redis/cluster_map.h"
#include "store/redis/connection.h"
#include "store/redis/redis_store.h"

namespace tollgate::redis {

class RedisClusterTransport final : public RedisShards {
 public:
  static constexpr std::size_t kMaxPrimaries = 16;
  static constexpr int kMaxHops = 5;
  static constexpr int kClusterRetries = 4;
  static constexpr std::chrono::milliseconds kClusterRetryDelay{25};
  static constexpr std::chrono::milliseconds kTopologyPeriod{5000};
  static constexpr std::chrono::milliseconds kMinRefreshGap{100};

  // Throws ConfigError (field store.nodes[i]) for a URL that does not parse.
  explicit RedisClusterTransport(const StoreConfig& config);
  ~RedisClusterTransport() override;

  std::size_t shard_count() const override { return kMaxPrimaries; }
  // The index of the primary that owns the key's slot now (0 while the map is unknown:
  // the call is routed when it is sent).
  std::size_t shard_of(const Policy& policy, std::string_view key) const override;
  std::string shard_name(std::size_t shard) const override;  // "<first node> primary #i"
  void send_leases(std::size_t shard, std::vector<const LeaseRequest*> requests,
                   std::function<void(resilience::ShardOutcome)> done) override;
  void send_give_backs(std::size_t shard, std::vector<GiveBack> batch) override;

  void close() override;
  asio::io_context& io() noexcept override { return io_; }
  Counters counters() const noexcept override;

  // The primary's address for a slot now ("host:port"; empty if unknown). Tests.
  std::string owner_of_slot(int slot) const;

 private:
  static constexpr std::uint8_t kUnknown = 0xff;
  struct Node {
    std::string host;
    int port = 0;
    std::shared_ptr<Connection> connection;
    bool owns = false;             // owns slots in the current map
    std::uint64_t last_owned = 0;  // the map generation it last owned slots in
  };
  struct Call;

  void start(std::shared_ptr<Call> call);  // io thread, from here on
  void route_give_backs(const std::vector<GiveBack>& batch);
  void route(std::shared_ptr<Call> call, std::vector<std::size_t> idx);
  void send_part(std::shared_ptr<Call> call, std::size_t node, std::vector<std::size_t> idx,
                 bool asking, bool reload);
  void finish_if_done(const std::shared_ptr<Call>& call);
  void refresh();
  void query_topology(std::size_t candidate,
                      std::shared_ptr<std::vector<std::shared_ptr<Connection>>> candidates,
                      bool slots);
  void topology_failed(const std::string& why);
  void apply(const std::vector<SlotRange>& ranges);
  // The index of the node at host:port, given one if it has none (-1: none free).
  int node_index(const std::string& host, int port, const std::vector<SlotRange>* next_map);
  void arm_period();
  std::string node_name(std::size_t i) const;

  const StoreConfig config_;
  Endpoint first_;  // scheme, user and password for every node
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::shared_ptr<Connection>> seeds_;
  std::array<Node, kMaxPrimaries> nodes_;  // io thread
  std::array<std::atomic<std::uint8_t>, kClusterSlots> owner_;
  mutable std::mutex names_mu_;
  std::array<std::string, kMaxPrimaries> names_;  // "host:port" per index, for tests

  // Topology (io thread).
  bool known_ = false;
  bool closing_ = false;
  bool map_failing_ = false;
  std::string last_topology_error_;
  bool refreshing_ = false;
  bool refresh_again_ = false;
  bool refresh_scheduled_ = false;
  std::uint64_t generation_ = 0;
  std::chrono::steady_clock::time_point last_refresh_{};
  std::vector<std::shared_ptr<Call>> waiting_for_map_;
  std::vector<std::vector<GiveBack>> give_backs_waiting_for_map_;  // sent once it is known
  asio::steady_timer period_;
  asio::steady_timer refresh_timer_;
  std::mt19937_64 jitter_{std::random_device{}()};

  std::size_t wait_replicas_ = 0;
  std::string wait_timeout_ms_;
  std::string lease_sha_;
  std::string give_back_sha_;
  std::atomic<std::uint64_t> redirects_{0}, cluster_retries_{0}, refreshes_{0};
  std::once_flag closed_;
  std::thread thread_;
};

}  // namespace tollgate::redis
