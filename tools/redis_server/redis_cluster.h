// A real Redis Cluster for a test or the simulator: primaries and replicas (redis-server
// --cluster-enabled yes) on free loopback ports, joined by `redis-cli --cluster create
// --cluster-replicas N --cluster-yes`, ready once every node says cluster_state:ok.
// Stopped (and its files removed) when the object goes — also when a test fails or
// the constructor throws half-way. Not thread-safe: one thread drives it.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "redis_server.h"

namespace tollgate::testing {

class RedisCluster {
 public:
  struct Options {
    int primaries = 3;
    int replicas_per_primary = 1;
    // How long a node may not answer before the others mark it failed (a replica may
    // then take over on its own; tests promote one with promote()).
    int node_timeout_ms = 2000;
    // no: slots of a failed primary fail alone instead of the whole cluster (CLUSTERDOWN).
    bool require_full_coverage = true;
  };
  RedisCluster() : RedisCluster(Options{}) {}
  explicit RedisCluster(Options options);
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  std::size_t size() const noexcept { return nodes_.size(); }
  RedisServer& node(std::size_t i) { return *nodes_.at(i); }
  // Every node's redis://127.0.0.1:port: the seed list of a cluster store.
  std::vector<std::string> urls() const;

  // The cluster as a live node sees it now (CLUSTER NODES).
  struct NodeView {
    std::size_t index = 0;  // into node()
    std::string id;
    bool primary = false;
    bool failed = false;     // flagged fail or fail? by the node asked
    std::string primary_id;  // a replica's primary
  };
  std::vector<NodeView> view() const;
  // The hash slot of a key, as the server computes it (CLUSTER KEYSLOT).
  int slot_of(const std::string& key) const;
  // The node that owns a slot, as a live node says (CLUSTER SLOTS); -1 if none.
  int owner_of(int slot) const;
  // A replica of the primary at node(primary); -1 if none.
  int replica_of(std::size_t primary) const;
  std::string id_of(std::size_t i) const;

  // Moves one slot to node(to) the way redis-cli --cluster reshard does: SETSLOT
  // IMPORTING on the target, MIGRATING on the source, MIGRATE the keys in batches of
  // `batch`, then SETSLOT NODE on both and on every other primary.
  void move_slot(int slot, std::size_t to, int batch = 100);
  // CLUSTER FAILOVER FORCE on a replica; returns once it says it is a primary (bounded:
  // 10 s, else throws).
  void promote(std::size_t replica);
  // Polls (bounded by `within`) until every running node says cluster_state:ok, they
  // agree on who owns every slot, and every running replica's link to its primary is up.
  bool wait_until_ok(std::chrono::milliseconds within) const;
  std::string cli(std::size_t i, const std::vector<std::string>& args) const {
    return nodes_.at(i)->cli(args);
  }

 private:
  std::size_t any_running() const;
  std::vector<std::array<int, 3>> ranges_seen_by(std::size_t i) const;
  std::size_t index_of_port(int port) const;
  Options options_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace tollgate::testing
