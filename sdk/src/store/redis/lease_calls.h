// What the shard store and the cluster store share: a lease or give-back as an EVALSHA
// command, its reply as a grant, WAIT's answer applied to grants, one connection's
// options (scripts loaded on connect), where log lines go, and the Asio timers the
// GuardedStore's retries wait on.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "resilience/guarded_store.h"
#include "store/redis/connection.h"
#include "store/redis/lease_reply.h"  // to_grant, needs_script_load
#include "tollgate/config.h"
#include "tollgate/observer.h"
#include "tollgate/quota_store.h"

namespace tollgate::redis {

// The group whose hash tag a key's Redis keys carry: the policy's, else the key itself.
std::string_view group_of(const Policy& p, std::string_view key);
Command lease_command(const std::string& sha, const LeaseRequest& r);
Command give_back_command(const std::string& sha, const GiveBack& g);
// One EVALSHA of a script for many keys, from single-key calls of it: the keys of every
// call, then the ARGV of every call, in order (the scripts take KEYS and ARGV in runs).
// Its reply holds six integers per key (to_grant(reply, k, keys)).
Command many_keys(std::vector<Command> calls);
// WAIT's reply after a pipeline of lease calls: fewer than `wanted` replicas acknowledged
// (or an error) fails every grant of more than 0 tokens among `grants` (a failover could
// forget them). Returns whether the replicas acknowledged.
bool apply_replica_acks(const Reply& wait, std::size_t wanted, std::vector<LeaseGrant*> grants);

// Where connections' log lines go; read on the io thread, set once by the Limiter.
struct ObserverSlot {
  std::mutex mu;
  std::shared_ptr<Observer> observer;
  std::shared_ptr<Observer> get() {
    std::lock_guard lk(mu);
    return observer;
  }
};
// The server at urls[i]; throws ConfigError (field "<field>[i]") for a URL that does not parse.
Endpoint endpoint_at(const std::vector<std::string>& urls, std::size_t i, const std::string& field);
// A connection to one server with the store's timeouts, TLS CAs and the scripts loaded
// on every connect.
Connection::Options connection_options(const StoreConfig& config, Endpoint endpoint,
                                       std::shared_ptr<ObserverSlot> observer);

// The guard's retries wait on an Asio timer of the io thread: real time, as the
// connection's reconnect back-off they wait out is.
class AsioTimers final : public resilience::Timers {
 public:
  explicit AsioTimers(asio::io_context& io) : io_(io) {}
  void after(Nanos delay, std::function<void()> fn) override;

 private:
  asio::io_context& io_;
};

}  // namespace tollgate::redis
