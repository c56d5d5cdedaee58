#include "redis/redis_store.h"

#include <openssl/sha.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "redis/keys.h"
#include "redis/scripts.h"

namespace tollgate::redis {
namespace {

std::string sha1_hex(std::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex(2 * SHA_DIGEST_LENGTH, '0');
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < SHA_DIGEST_LENGTH; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

std::string_view group_of(const Policy& p, std::string_view key) {
  return p.group.empty() ? key : std::string_view(p.group);
}

std::string micros(Nanos d) {
  return std::to_string(d.count() / 1000);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// The keys and arguments of one request in the lease script's call (scripts.h: KEYS in
// threes, ARGV in seventeens).
void add_lease(const LeaseRequest& r, std::vector<std::string>& keys,
               std::vector<std::string>& args) {
  const Policy& p = *r.policy;
  const std::string_view group = group_of(p, r.key);
  const bool budget = p.kind == PolicyKind::kTokenBucket && p.has_group_budget();
  const bool paced = p.kind == PolicyKind::kTokenBucket && p.shares_instances();
  const double demand = std::isfinite(r.demand) && r.demand > 0 ? r.demand : 0;
  keys.push_back(bucket_key(group, p.name, r.key));
  keys.push_back(request_key(group, r.request_id));
  keys.push_back(group_key(group));
  for (std::string a :
       {std::to_string(static_cast<int>(p.kind)), std::to_string(r.want), std::to_string(r.min),
        micros(r.ttl), number(p.rate), number(p.effective_burst()), std::to_string(p.limit),
        micros(p.window), r.holder, number(demand), std::to_string(r.held),
        number(budget ? p.group_rate : 0), number(p.effective_group_burst()), number(p.weight),
        number(p.guaranteed_rate), std::string(paced ? "1" : "0"), tenant_field(p.name, r.key)}) {
    args.push_back(std::move(a));
  }
}

// One EVALSHA of the lease script for many requests.
Command lease_command(const std::string& sha, const std::vector<const LeaseRequest*>& requests) {
  std::vector<std::string> keys, args;
  keys.reserve(3 * requests.size());
  args.reserve(17 * requests.size());
  for (const LeaseRequest* r : requests) add_lease(*r, keys, args);
  Command cmd;
  cmd.reserve(3 + keys.size() + args.size());
  cmd.push_back("EVALSHA");
  cmd.push_back(sha);
  cmd.push_back(std::to_string(keys.size()));
  for (auto& k : keys) cmd.push_back(std::move(k));
  for (auto& a : args) cmd.push_back(std::move(a));
  return cmd;
}

// One EVALSHA of the give-back script for many give-backs.
Command give_back_command(const std::string& sha, const std::vector<const GiveBack*>& batch) {
  Command cmd{"EVALSHA", sha, std::to_string(batch.size())};
  for (const GiveBack* g : batch) {
    const Policy& p = *g->policy;
    cmd.push_back(bucket_key(group_of(p, g->key), p.name, g->key));
  }
  for (const GiveBack* g : batch) {
    const Policy& p = *g->policy;
    cmd.push_back(std::to_string(static_cast<int>(p.kind)));
    cmd.push_back(std::to_string(g->tokens));
    cmd.push_back(micros(g->expires_at));
    cmd.push_back(g->holder);
    cmd.push_back(micros(p.window));
  }
  return cmd;
}

// {granted, now_us, expires_at_us, remaining, wait_until_us, limited_by} of the k-th key of
// a call's reply (six integers per key).
LeaseGrant to_grant(const Reply& r, std::size_t k, std::size_t keys) {
  LeaseGrant g;
  if (r.type != Reply::Type::kArray || r.elements.size() != 6 * keys) {
    g.ok = false;
    g.error = r.is_error() ? "redis: " + r.str : "redis: unexpected reply to the lease script";
    return g;
  }
  auto at = [&](std::size_t i) { return r.elements[6 * k + i].integer; };
  g.granted = static_cast<std::uint64_t>(std::max<long long>(0, at(0)));
  g.now = Nanos{at(1) * 1000};
  g.expires_at = Nanos{at(2) * 1000};
  g.remaining = static_cast<std::uint64_t>(std::max<long long>(0, at(3)));
  g.wait_until = Nanos{at(4) * 1000};
  if (at(5) >= 0 && at(5) <= 2) g.limited_by = static_cast<LimitLevel>(at(5));
  return g;
}

// The guard's retries wait on an Asio timer of the io thread: real time, as the
// connection's reconnect back-off they wait out is.
class AsioTimers final : public resilience::Timers {
 public:
  explicit AsioTimers(asio::io_context& io) : io_(io) {}
  void after(Nanos delay, std::function<void()> fn) override {
    asio::post(io_, [&io = io_, delay, fn = std::move(fn)]() mutable {
      auto timer = std::make_shared<asio::steady_timer>(io, delay);
      timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
        if (!ec) fn();
      });
    });
  }

 private:
  asio::io_context& io_;
};

}  // namespace

// One send_leases() call: its requests, the answers so far, and whom to tell.
struct RedisTransport::Leases {
  std::vector<const LeaseRequest*> requests;
  std::vector<LeaseGrant> grants;
  std::function<void(resilience::ShardOutcome)> done;
};

RedisTransport::RedisTransport(const StoreConfig& config)
    : work_(asio::make_work_guard(io_)),
      lease_sha_(sha1_hex(kLeaseScript)),
      give_back_sha_(sha1_hex(kGiveBackScript)) {
  for (std::size_t i = 0; i < config.shards.size(); ++i) {
    Connection::Options o;
    try {
      o.endpoint = Endpoint::parse(config.shards[i]);
    } catch (const std::invalid_argument& ex) {
      throw ConfigError("store.shards[" + std::to_string(i) + "]", ex.what());
    }
    o.connect_timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(config.connect_timeout);
    o.command_timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(config.command_timeout);
    // Loaded on every connect, so that NOSCRIPT is only seen after SCRIPT FLUSH or a
    // restart behind a live connection (then the call loads it again and resends).
    o.tls_ca_file = config.tls_ca_file;
    o.on_connect = {{"SCRIPT", "LOAD", kLeaseScript}, {"SCRIPT", "LOAD", kGiveBackScript}};
    o.log = [slot = observer_](LogLevel level, const std::string& message) {
      if (auto ob = slot->get()) ob->on_log(level, message);
    };
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

void RedisTransport::set_observer(std::shared_ptr<Observer> observer) {
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

RedisTransport::Counters RedisTransport::counters() const noexcept {
  return {calls_.load(), batches_.load(), reloads_.load()};
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
    runs.emplace_back(
        idx.begin() + static_cast<std::ptrdiff_t>(k),
        idx.begin() + static_cast<std::ptrdiff_t>(std::min(idx.size(), k + kKeysPerScript)));
  }
  std::vector<Command> cmds;
  cmds.reserve(runs.size() + 1);
  if (reload) cmds.push_back({"SCRIPT", "LOAD", kLeaseScript});
  for (const auto& run : runs) {
    std::vector<const LeaseRequest*> rs;
    rs.reserve(run.size());
    for (std::size_t i : run) rs.push_back(leases->requests[i]);
    cmds.push_back(lease_command(lease_sha_, rs));
  }
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
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const Reply& r = replies[offset + k];
      if (!reload && r.error_code_is("NOSCRIPT")) {
        // The script did not run: sending it again is safe.
        again.insert(again.end(), runs[k].begin(), runs[k].end());
        continue;
      }
      for (std::size_t j = 0; j < runs[k].size(); ++j) {
        leases->grants[runs[k][j]] = to_grant(r, j, runs[k].size());
      }
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
  std::vector<const GiveBack*> run;
  for (const GiveBack& g : batch) {
    if (!g.policy) continue;
    run.push_back(&g);
    if (run.size() == kKeysPerScript) {
      cmds->push_back(give_back_command(give_back_sha_, run));
      run.clear();
    }
  }
  if (!run.empty()) cmds->push_back(give_back_command(give_back_sha_, run));
  if (cmds->empty()) return;
  calls_ += cmds->size();
  ++batches_;
  shards_[shard]->send(*cmds, [this, shard, cmds](std::vector<Reply> replies, std::string error) {
    if (!error.empty()) return;  // best effort: the tokens expire in Redis
    std::vector<Command> again;
    for (std::size_t k = 0; k < replies.size(); ++k) {
      if (replies[k].error_code_is("NOSCRIPT")) again.push_back((*cmds)[k]);
    }
    if (again.empty()) return;
    ++reloads_;
    again.insert(again.begin(), Command{"SCRIPT", "LOAD", kGiveBackScript});
    shards_[shard]->send(std::move(again), [](std::vector<Reply>, std::string) {});
  });
}

RedisStore::RedisStore(const StoreConfig& config, std::shared_ptr<const Clock> clock)
    : transport_(std::make_shared<RedisTransport>(config)),
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
  return {wire.calls,    wire.batches,          guard.failures,          wire.reloads,
          guard.retries, guard.short_circuited, guard.bulkhead_rejected, guard.most_in_flight};
}

}  // namespace tollgate::redis
