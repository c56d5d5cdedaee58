#include "store/redis/redis_store.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <utility>

#include "store/redis/keys.h"
#include "store/redis/redis_cluster.h"
#include "store/redis/scripts.h"

namespace tollgate::redis {

std::string_view group_of(const Policy& p, std::string_view key) {
  return p.group.empty() ? key : std::string_view(p.group);
}

namespace {

std::string micros(Nanos d) {
  return std::to_string(d.count() / 1000);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// An EVALSHA of one script: its keys, then its ARGV filled slot by slot (Slot: LeaseArg or
// GiveBackArg, in the order of the script's `slots` table).
template <typename Slot>
class Eval {
 public:
  Eval(const std::string& sha, std::initializer_list<std::string> keys)
      : command_{"EVALSHA", sha, std::to_string(keys.size())} {
    command_.insert(command_.end(), keys);
    base_ = command_.size();
    command_.resize(base_ + static_cast<std::size_t>(Slot::kCount));
  }
  Eval& set(Slot slot, std::string value) {
    command_[base_ + static_cast<std::size_t>(slot)] = std::move(value);
    return *this;
  }
  Command take() { return std::move(command_); }

 private:
  Command command_;
  std::size_t base_ = 0;
};
}  // namespace

Command lease_command(const std::string& sha, const LeaseRequest& r) {
  const ResolvedPolicy& p = *r.policy;
  const std::string_view group = group_of(p, r.key);
  const bool budget = p.kind == PolicyKind::kTokenBucket && p.has_group_budget();
  const bool paced = p.kind == PolicyKind::kTokenBucket && p.shares_instances();
  const double demand = std::isfinite(r.demand) && r.demand > 0 ? r.demand : 0;
  using A = LeaseArg;
  return Eval<A>(sha, {bucket_key(group, p.name, r.key), request_key(group, r.request_id),
                       group_key(group)})
      .set(A::kKind, std::to_string(static_cast<int>(p.kind)))
      .set(A::kWant, std::to_string(r.want))
      .set(A::kMin, std::to_string(r.min))
      .set(A::kTtlUs, micros(r.ttl))
      .set(A::kRate, number(p.rate))
      .set(A::kBurst, number(p.effective_burst()))
      .set(A::kLimit, std::to_string(p.limit))
      .set(A::kWindowUs, micros(p.window))
      .set(A::kHolder, r.holder)
      .set(A::kDemand, number(demand))
      .set(A::kHeld, std::to_string(r.held))
      .set(A::kGroupRate, number(budget ? p.group_rate : 0))
      .set(A::kGroupBurst, number(p.effective_group_burst()))
      .set(A::kWeight, number(p.weight))
      .set(A::kGuaranteedRate, number(p.guaranteed_rate))
      .set(A::kFairInstances, paced ? "1" : "0")
      .set(A::kTenant, tenant_field(p.name, r.key))
      .take();
}

Command give_back_command(const std::string& sha, const GiveBack& g) {
  const ResolvedPolicy& p = *g.policy;
  const std::string_view group = group_of(p, g.key);
  const bool budget = p.kind == PolicyKind::kTokenBucket && p.has_group_budget();
  using A = GiveBackArg;
  return Eval<A>(sha, {bucket_key(group, p.name, g.key), group_key(group)})
      .set(A::kKind, std::to_string(static_cast<int>(p.kind)))
      .set(A::kTokens, (g.debt ? "-" : "") + std::to_string(g.tokens))
      .set(A::kExpiresAtUs, g.late ? "0" : micros(g.expires_at))  // 0: a late refund
      .set(A::kHolder, g.holder)
      .set(A::kWindowUs, micros(p.window))
      .set(A::kRate, number(p.rate))
      .set(A::kBurst, number(p.effective_burst()))
      .set(A::kGroupRate, number(budget ? p.group_rate : 0))
      .set(A::kGroupBurst, number(p.effective_group_burst()))
      .take();
}

void AsioTimers::after(Nanos delay, std::function<void()> fn) {
  asio::post(io_, [&io = io_, delay, fn = std::move(fn)]() mutable {
    auto timer = std::make_shared<asio::steady_timer>(io, delay);
    timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec) fn();
    });
  });
}

Command many_keys(std::vector<Command> calls) {
  if (calls.size() == 1) return std::move(calls[0]);
  std::size_t keys = 0, size = 3;
  for (const Command& c : calls) {
    keys += std::stoul(c[2]);
    size += c.size() - 3;
  }
  Command out;
  out.reserve(size);
  out.push_back("EVALSHA");
  out.push_back(calls[0][1]);
  out.push_back(std::to_string(keys));
  for (Command& c : calls) {
    const std::size_t n = std::stoul(c[2]);
    for (std::size_t i = 0; i < n; ++i) out.push_back(std::move(c[3 + i]));
  }
  for (Command& c : calls) {
    const std::size_t n = std::stoul(c[2]);
    for (std::size_t i = 3 + n; i < c.size(); ++i) out.push_back(std::move(c[i]));
  }
  return out;
}

bool apply_replica_acks(const Reply& wait, std::size_t wanted, std::vector<LeaseGrant*> grants) {
  const long long acked = wait.type == Reply::Type::kInteger ? wait.integer : -1;
  if (acked >= static_cast<long long>(wanted)) return true;
  const std::string why = wait.is_error()
                              ? "redis: WAIT: " + wait.str
                              : "redis: WAIT: " + std::to_string(std::max(0LL, acked)) + " of " +
                                    std::to_string(wanted) + " replicas had the grant in time";
  for (LeaseGrant* g : grants) {
    // A grant no replica holds could be forgotten by a failover: it is not used.
    if (g->ok && g->granted > 0) {
      g->ok = false;
      g->error = why;
    }
  }
  return false;
}

Endpoint endpoint_at(const std::vector<std::string>& urls, std::size_t i,
                     const std::string& field) {
  try {
    return Endpoint::parse(urls[i]);
  } catch (const std::invalid_argument& ex) {
    throw ConfigError(field + "[" + std::to_string(i) + "]", ex.what());
  }
}

Connection::Options connection_options(const StoreConfig& config, Endpoint endpoint,
                                       std::shared_ptr<ObserverSlot> observer) {
  Connection::Options o;
  o.endpoint = std::move(endpoint);
  o.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.connect_timeout);
  o.command_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.command_timeout);
  // Loaded on every connect, so that NOSCRIPT is only seen after SCRIPT FLUSH or a
  // restart behind a live connection (then the call loads it again and resends).
  o.tls_ca_file = config.tls_ca_file;
  o.on_connect = {{"SCRIPT", "LOAD", kLeaseScript}, {"SCRIPT", "LOAD", kGiveBackScript}};
  o.log = [slot = std::move(observer)](LogLevel level, const std::string& message) {
    if (auto ob = slot->get()) ob->on_log(level, message);
  };
  return o;
}

// One send_leases() call: its requests, the answers so far, and whom to tell.
struct RedisTransport::Leases {
  std::vector<const LeaseRequest*> requests;
  std::vector<LeaseGrant> grants;
  std::function<void(resilience::ShardOutcome)> done;
};

RedisTransport::RedisTransport(const StoreConfig& config)
    : work_(asio::make_work_guard(io_)),
      wait_replicas_(static_cast<std::size_t>(config.wait_replicas)),
      wait_timeout_ms_(std::to_string(
          std::chrono::duration_cast<std::chrono::milliseconds>(config.wait_timeout).count())),
      lease_sha_(lua::kLeaseSha1),
      give_back_sha_(lua::kGiveBackSha1) {
  for (std::size_t i = 0; i < config.shards.size(); ++i) {
    auto o = connection_options(config, endpoint_at(config.shards, i, "store.shards"), observer_);
    try {
      shards_.push_back(Connection::create(io_, std::move(o)));
    } catch (const std::exception& ex) {  // e.g. a CA file that cannot be read
      throw ConfigError("store.tls_ca_file", ex.what());
    }
  }
  if (shards_.empty()) throw ConfigError("store.shards", "at least one redis:// URL");
  thread_ = std::thread([this] { io_.run(); });
}

RedisTransport::~RedisTransport() {
  close();
}

void RedisTransport::close() {
  std::call_once(closed_, [this] {
    // Fail what is in flight (every callback is called), then stop the thread.
    for (auto& c : shards_) c->close();
    asio::post(io_, [this] { io_.stop(); });
    work_.reset();
    if (thread_.joinable()) thread_.join();
  });
}

void RedisShards::set_observer(std::shared_ptr<Observer> observer) {
  std::lock_guard lk(observer_->mu);
  observer_->observer = std::move(observer);
}

std::size_t RedisTransport::shard_of(const Policy& policy, std::string_view key) const {
  return static_cast<std::size_t>(
      redis::shard_of(group_of(policy, key), static_cast<std::int32_t>(shards_.size())));
}

std::string RedisTransport::shard_name(std::size_t shard) const {
  return shards_.at(shard)->endpoint().redacted();
}

RedisShards::Counters RedisShards::counters() const noexcept {
  Counters c;
  c.calls = calls_.load();
  c.batches = batches_.load();
  c.reloads = reloads_.load();
  c.unreplicated = unreplicated_.load();
  return c;
}

void RedisTransport::send_leases(std::size_t shard, std::vector<const LeaseRequest*> requests,
                                 std::function<void(resilience::ShardOutcome)> done) {
  auto leases = std::make_shared<Leases>();
  leases->grants.resize(requests.size());
  leases->requests = std::move(requests);
  leases->done = std::move(done);
  std::vector<std::size_t> idx(leases->requests.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  send_lease_commands(shard, std::move(leases), std::move(idx), false);
}

void RedisTransport::send_lease_commands(std::size_t shard, std::shared_ptr<Leases> leases,
                                         std::vector<std::size_t> idx, bool reload) {
  // One script run per kKeysPerScript keys: Redis runs a script alone, so a run is kept
  // to a few milliseconds.
  std::vector<std::vector<std::size_t>> runs;
  for (std::size_t k = 0; k < idx.size(); k += kKeysPerScript) {
    const std::size_t end = std::min(idx.size(), k + kKeysPerScript);
    runs.emplace_back(idx.begin() + static_cast<std::ptrdiff_t>(k),
                      idx.begin() + static_cast<std::ptrdiff_t>(end));
  }
  std::vector<Command> cmds;
  cmds.reserve(runs.size() + 1);
  if (reload) cmds.push_back({"SCRIPT", "LOAD", kLeaseScript});
  for (const auto& run : runs) {
    std::vector<Command> calls;
    calls.reserve(run.size());
    for (std::size_t i : run) calls.push_back(lease_command(lease_sha_, *leases->requests[i]));
    cmds.push_back(many_keys(std::move(calls)));
  }
  // A grant counts once a replica has it (store.wait_replicas): WAIT after the calls.
  if (wait_replicas_ > 0)
    cmds.push_back({"WAIT", std::to_string(wait_replicas_), wait_timeout_ms_});
  calls_ += runs.size();
  ++batches_;
  shards_[shard]->send(std::move(cmds), [this, shard, leases, runs = std::move(runs), reload](
                                            std::vector<Reply> replies, std::string error) {
    if (!error.empty()) {
      resilience::ShardOutcome out;
      // "unavailable": never written, so it did not run. A resend after NOSCRIPT that
      // fails is not that: the call's other keys did run.
      out.unsent = !reload && Connection::refused(error);
      out.error = std::move(error);
      leases->done(std::move(out));
      return;
    }
    const std::size_t offset = reload ? 1 : 0;
    std::vector<std::size_t> again;
    std::vector<LeaseGrant*> answered;
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const Reply& r = replies[offset + k];
      if (!reload && r.error_code_is("NOSCRIPT")) {
        // The script did not run: sending it again is safe.
        again.insert(again.end(), runs[k].begin(), runs[k].end());
        continue;
      }
      for (std::size_t j = 0; j < runs[k].size(); ++j) {
        leases->grants[runs[k][j]] = to_grant(r, j, runs[k].size());
        answered.push_back(&leases->grants[runs[k][j]]);
      }
    }
    if (wait_replicas_ > 0 && !apply_replica_acks(replies.back(), wait_replicas_, answered)) {
      ++unreplicated_;
    }
    if (!again.empty()) {
      ++reloads_;
      send_lease_commands(shard, leases, std::move(again), true);
      return;
    }
    resilience::ShardOutcome out;
    out.grants = std::move(leases->grants);
    leases->done(std::move(out));
  });
}

void RedisTransport::send_give_backs(std::size_t shard, std::vector<GiveBack> batch) {
  auto cmds = std::make_shared<std::vector<Command>>();
  std::vector<Command> run;
  for (const GiveBack& g : batch) {
    if (!g.policy) continue;
    run.push_back(give_back_command(give_back_sha_, g));
    if (run.size() == kKeysPerScript) cmds->push_back(many_keys(std::exchange(run, {})));
  }
  if (!run.empty()) cmds->push_back(many_keys(std::move(run)));
  if (cmds->empty()) return;
  calls_ += cmds->size();
  ++batches_;
  shards_[shard]->send(*cmds, [this, shard, cmds](std::vector<Reply> replies, std::string error) {
    if (!error.empty()) return;  // best effort: the tokens expire in Redis
    std::vector<Command> again;
    for (std::size_t k = 0; k < replies.size(); ++k) {
      if (needs_script_load(replies[k])) again.push_back((*cmds)[k]);
    }
    if (again.empty()) return;
    ++reloads_;
    again.insert(again.begin(), Command{"SCRIPT", "LOAD", kGiveBackScript});
    shards_[shard]->send(std::move(again), [](std::vector<Reply>, std::string) {});
  });
}

namespace {
std::shared_ptr<RedisShards> make_transport(const StoreConfig& config) {
  if (config.type == "redis_cluster") return std::make_shared<RedisClusterTransport>(config);
  return std::make_shared<RedisTransport>(config);
}
}  // namespace

RedisStore::RedisStore(const StoreConfig& config, std::shared_ptr<const Clock> clock)
    : transport_(make_transport(config)),
      guard_(std::make_shared<resilience::GuardedStore>(
          transport_, config.breaker, config.bulkhead, resilience::RetryOptions{}, std::move(clock),
          std::make_shared<AsioTimers>(transport_->io()))) {}

RedisStore::~RedisStore() {
  // Fail what is in flight and stop the io thread first: no callback runs after this.
  transport_->close();
}

void RedisStore::set_observer(std::shared_ptr<Observer> observer) {
  guard_->set_observer(observer);
  transport_->set_observer(std::move(observer));
}

RedisStore::Counters RedisStore::counters() const noexcept {
  const auto wire = transport_->counters();
  const auto guard = guard_->counters();
  return {
      wire.calls,        wire.batches,          guard.failures,          wire.reloads,
      guard.retries,     guard.short_circuited, guard.bulkhead_rejected, guard.most_in_flight,
      wire.unreplicated, wire.redirects,        wire.cluster_retries,    wire.topology_refreshes};
}

StoreStats RedisStore::stats() const {
  const auto guard = guard_->counters();
  StoreStats s;
  s.bulkhead_rejected = guard.bulkhead_rejected;
  s.short_circuited = guard.short_circuited;
  s.store_retries = guard.retries;
  return s;
}

}  // namespace tollgate::redis
