#include "redis/redis_store.h"

#include <openssl/sha.h>

#include <boost/asio/post.hpp>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "redis/keys.h"
#include "redis/lease_reply.h"
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

Command lease_command(const std::string& sha, const LeaseRequest& r) {
  const Policy& p = *r.policy;
  const std::string_view group = group_of(p, r.key);
  const bool budget = p.kind == PolicyKind::kTokenBucket && p.has_group_budget();
  const bool paced = p.kind == PolicyKind::kTokenBucket && p.shares_instances();
  const double demand = std::isfinite(r.demand) && r.demand > 0 ? r.demand : 0;
  return {"EVALSHA",
          sha,
          "3",
          bucket_key(group, p.name, r.key),
          request_key(group, r.request_id),
          group_key(group),
          std::to_string(static_cast<int>(p.kind)),
          std::to_string(r.want),
          std::to_string(r.min),
          micros(r.ttl),
          number(p.rate),
          number(p.effective_burst()),
          std::to_string(p.limit),
          micros(p.window),
          r.holder,
          number(demand),
          std::to_string(r.held),
          number(budget ? p.group_rate : 0),
          number(p.effective_group_burst()),
          number(p.weight),
          number(p.guaranteed_rate),
          paced ? "1" : "0",
          tenant_field(p.name, r.key)};
}

Command give_back_command(const std::string& sha, const GiveBack& g) {
  const Policy& p = *g.policy;
  return {"EVALSHA",
          sha,
          "1",
          bucket_key(group_of(p, g.key), p.name, g.key),
          std::to_string(static_cast<int>(p.kind)),
          std::to_string(g.tokens),
          micros(g.expires_at),
          g.holder,
          micros(p.window)};
}

// After a transport failure, the same requests go again this much later: past the
// connection's first reconnect back-off (100 ms).
constexpr std::chrono::milliseconds kRetryAfter{150};

}  // namespace

// One lease() call: its answers, and how many shards are still to answer.
struct RedisStore::Call {
  std::mutex mu;  // shards answer on the io thread, but the first may answer inline
  std::vector<LeaseRequest> batch;
  std::vector<LeaseGrant> grants;
  std::size_t pending = 0;
  LeaseCallback done;

  void finish_part() {
    bool last = false;
    {
      std::lock_guard lk(mu);
      last = --pending == 0;
    }
    if (last) done(std::move(grants));
  }
};

RedisStore::RedisStore(const StoreConfig& config)
    : bulkhead_(config.bulkhead),
      work_(asio::make_work_guard(io_)),
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
    // restart behind a live connection (then the call loads it again and retries).
    o.tls_ca_file = config.tls_ca_file;
    o.on_connect = {{"SCRIPT", "LOAD", kLeaseScript}, {"SCRIPT", "LOAD", kGiveBackScript}};
    o.log = [slot = observer_](LogLevel level, const std::string& message) {
      if (auto ob = slot->get()) ob->on_log(level, message);
    };
    const BreakerConfig& bc = config.breaker;
    resilience::BreakerOptions bo;
    bo.failure_ratio = bc.failure_ratio;
    bo.slow_call_rate_threshold = bc.slow_call_rate_threshold;
    bo.slow_call_duration_threshold = bc.slow_call_duration_threshold;
    bo.sampling_duration = bc.sampling_duration;
    bo.sliding_window_size = bc.sliding_window_size;
    bo.minimum_throughput = bc.minimum_throughput;
    bo.break_duration = bc.break_duration;
    bo.permitted_calls_in_half_open = bc.permitted_calls_in_half_open;
    breakers_.push_back(std::make_unique<resilience::CircuitBreaker>(bo, SteadyClock::shared()));
    breakers_.back()->set_observer(
        [slot = observer_, shard = static_cast<std::uint32_t>(i), url = o.endpoint.redacted()](
            BreakerState from, BreakerState to) {
          auto ob = slot->get();
          if (!ob) return;
          ob->on_breaker(BreakerEvent{shard, from, to});
          ob->on_log(to == BreakerState::kOpen ? LogLevel::kWarn : LogLevel::kInfo,
                     url + ": circuit breaker " + std::string(to_string(from)) + " -> " +
                         std::string(to_string(to)));
        });
    gates_.push_back(std::make_unique<Gate>());
    try {
      shards_.push_back(Connection::create(io_, std::move(o)));
    } catch (const std::exception& ex) {  // e.g. a CA file that cannot be read
      throw ConfigError("store.tls_ca_file", ex.what());
    }
  }
  if (shards_.empty()) throw ConfigError("store.shards", "at least one redis:// URL");
  thread_ = std::thread([this] { io_.run(); });
}

void RedisStore::set_observer(std::shared_ptr<Observer> observer) {
  std::lock_guard lk(observer_->mu);
  observer_->observer = std::move(observer);
}

std::vector<BreakerState> RedisStore::breaker_states() const {
  std::vector<BreakerState> out;
  out.reserve(breakers_.size());
  for (const auto& b : breakers_) out.push_back(b->state());
  return out;
}

RedisStore::~RedisStore() {
  // Fail what is in flight (every lease callback is called), then stop the thread.
  for (auto& c : shards_) c->close();
  asio::post(io_, [this] { io_.stop(); });
  work_.reset();
  if (thread_.joinable()) thread_.join();
}

std::size_t RedisStore::shard_of(const Policy& policy, std::string_view key) const {
  return static_cast<std::size_t>(
      redis::shard_of(group_of(policy, key), static_cast<std::int32_t>(shards_.size())));
}

RedisStore::Counters RedisStore::counters() const noexcept {
  std::uint64_t most = 0;
  for (const auto& g : gates_) {
    std::lock_guard lk(g->mu);
    most = std::max<std::uint64_t>(most, g->most_in_flight);
  }
  return {calls_.load(),   batches_.load(),         failures_.load(),          reloads_.load(),
          retries_.load(), short_circuited_.load(), bulkhead_rejected_.load(), most};
}

void RedisStore::lease(std::vector<LeaseRequest> batch, LeaseCallback done) {
  auto call = std::make_shared<Call>();
  call->grants.resize(batch.size());
  std::vector<std::vector<std::size_t>> by_shard(shards_.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].policy) {
      call->grants[i].ok = false;
      call->grants[i].error = "lease request without a policy";
      continue;
    }
    by_shard[shard_of(*batch[i].policy, batch[i].key)].push_back(i);
  }
  call->batch = std::move(batch);
  call->done = std::move(done);
  call->pending = 1;  // held until every shard's part is sent
  for (std::size_t s = 0; s < shards_.size(); ++s) {
    if (!by_shard[s].empty()) admit(s, call, std::move(by_shard[s]));
  }
  call->finish_part();
}

void RedisStore::admit(std::size_t shard, const std::shared_ptr<Call>& call,
                       std::vector<std::size_t> idx) {
  Gate& gate = *gates_[shard];
  std::vector<std::size_t> now, later, refused;
  {
    std::lock_guard lk(gate.mu);
    const std::size_t free =
        bulkhead_.max_in_flight - std::min(bulkhead_.max_in_flight, gate.in_flight);
    // Keys already waiting go first: a new part only goes straight out if none wait.
    const std::size_t n_now = gate.queue.empty() ? std::min(free, idx.size()) : 0;
    const std::size_t room = bulkhead_.max_queue - std::min(bulkhead_.max_queue, gate.queued);
    const std::size_t n_later = std::min(room, idx.size() - n_now);
    now.assign(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n_now));
    later.assign(idx.begin() + static_cast<std::ptrdiff_t>(n_now),
                 idx.begin() + static_cast<std::ptrdiff_t>(n_now + n_later));
    refused.assign(idx.begin() + static_cast<std::ptrdiff_t>(n_now + n_later), idx.end());
    gate.in_flight += now.size();
    gate.most_in_flight = std::max(gate.most_in_flight, gate.in_flight);
    if (!later.empty()) {
      gate.queued += later.size();
      std::lock_guard lc(call->mu);
      ++call->pending;  // the queued part
      gate.queue.emplace_back(call, std::move(later));
    }
  }
  for (std::size_t i : refused) {
    LeaseGrant& g = call->grants[i];
    g.ok = false;
    g.error = "redis " + shards_[shard]->endpoint().redacted() + ": bulkhead full";
  }
  bulkhead_rejected_ += refused.size();
  if (!now.empty()) {
    {
      std::lock_guard lc(call->mu);
      ++call->pending;
    }
    const std::size_t slots = now.size();
    send_leases(shard, call, std::move(now), 0, false, slots);
  }
}

void RedisStore::part_done(std::size_t shard, std::size_t slots,
                           const std::shared_ptr<Call>& call) {
  Gate& gate = *gates_[shard];
  std::vector<std::pair<std::shared_ptr<Call>, std::vector<std::size_t>>> start;
  {
    std::lock_guard lk(gate.mu);
    gate.in_flight -= std::min(slots, gate.in_flight);
    while (!gate.queue.empty() && gate.in_flight < bulkhead_.max_in_flight) {
      auto& [waiting, keys] = gate.queue.front();
      const std::size_t take = std::min(keys.size(), bulkhead_.max_in_flight - gate.in_flight);
      if (take == keys.size()) {
        start.emplace_back(std::move(waiting), std::move(keys));  // carries the part's count
        gate.queue.pop_front();
      } else {
        std::vector<std::size_t> piece(keys.begin(),
                                       keys.begin() + static_cast<std::ptrdiff_t>(take));
        keys.erase(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(take));
        {
          std::lock_guard lc(waiting->mu);
          ++waiting->pending;  // the piece; the rest keeps the queued part's count
        }
        start.emplace_back(waiting, std::move(piece));
      }
      gate.in_flight += take;
      gate.queued -= take;
      gate.most_in_flight = std::max(gate.most_in_flight, gate.in_flight);
    }
  }
  for (auto& [waiting, keys] : start) {
    const std::size_t n = keys.size();
    send_leases(shard, waiting, std::move(keys), 0, false, n);
  }
  call->finish_part();
}

void RedisStore::send_leases(std::size_t shard, std::shared_ptr<Call> call,
                             std::vector<std::size_t> idx, int attempt, bool retried,
                             std::size_t slots) {
  resilience::CircuitBreaker& breaker = *breakers_[shard];
  if (!breaker.allow()) {
    // The shard is failing: answer at once instead of queueing behind it.
    for (std::size_t i : idx) {
      LeaseGrant& g = call->grants[i];
      g.ok = false;
      g.error = "redis " + shards_[shard]->endpoint().redacted() + ": circuit open";
    }
    short_circuited_ += idx.size();
    part_done(shard, slots, call);
    return;
  }
  const auto sent = std::chrono::steady_clock::now();
  std::vector<Command> cmds;
  cmds.reserve(idx.size() + 1);
  if (attempt > 0) cmds.push_back({"SCRIPT", "LOAD", kLeaseScript});
  for (std::size_t i : idx) cmds.push_back(lease_command(lease_sha_, call->batch[i]));
  calls_ += idx.size();
  ++batches_;
  shards_[shard]->send(
      std::move(cmds), [this, shard, call, idx = std::move(idx), attempt, retried, sent, slots](
                           std::vector<Reply> replies, std::string error) mutable {
        const Nanos took = std::chrono::steady_clock::now() - sent;
        if (error.empty()) {
          breakers_[shard]->on_success(took);
        } else {
          breakers_[shard]->on_failure(took);
        }
        // A batch refused before it was written ("unavailable": the connection is down)
        // did not run: nothing to find out by sending it again. The Limiter asks again.
        const bool unsent = Connection::refused(error);
        if (!error.empty() && !retried && !unsent) {
          // The batch may or may not have run (a lost reply, a dropped connection). Send the
          // same requests again once the connection has had time to come back: their ids
          // make Redis answer what it answered the first time, so nothing is granted twice
          // and nothing granted is lost.
          ++retries_;
          auto timer = std::make_shared<asio::steady_timer>(io_, kRetryAfter);
          timer->async_wait([this, shard, call, idx = std::move(idx), attempt, slots,
                             timer](const boost::system::error_code& ec) mutable {
            if (ec) return;
            send_leases(shard, std::move(call), std::move(idx), attempt, true, slots);
          });
          return;
        }
        const std::size_t offset = attempt > 0 ? 1 : 0;
        std::vector<std::size_t> again;
        for (std::size_t k = 0; k < idx.size(); ++k) {
          LeaseGrant& g = call->grants[idx[k]];
          if (!error.empty()) {
            g.ok = false;
            g.error = "redis " + shards_[shard]->endpoint().redacted() + ": " + error;
            ++failures_;
            continue;
          }
          const Reply& r = replies[offset + k];
          if (r.error_code_is("NOSCRIPT") && attempt == 0) {
            again.push_back(idx[k]);  // the script did not run: sending it again is safe
            continue;
          }
          g = to_grant(r);
          if (!g.ok) ++failures_;
        }
        if (!again.empty()) {
          ++reloads_;
          send_leases(shard, call, std::move(again), attempt + 1, retried, slots);  // pending
          return;
        }
        part_done(shard, slots, call);
      });
}

void RedisStore::give_back(std::vector<GiveBack> batch) {
  std::vector<std::vector<Command>> by_shard(shards_.size());
  for (const GiveBack& g : batch) {
    if (!g.policy || g.tokens == 0) continue;
    by_shard[shard_of(*g.policy, g.key)].push_back(give_back_command(give_back_sha_, g));
  }
  for (std::size_t s = 0; s < shards_.size(); ++s) {
    if (by_shard[s].empty()) continue;
    calls_ += by_shard[s].size();
    ++batches_;
    auto cmds = std::make_shared<std::vector<Command>>(std::move(by_shard[s]));
    shards_[s]->send(*cmds, [this, s, cmds](std::vector<Reply> replies, std::string error) {
      if (!error.empty()) return;  // best effort: the tokens expire in Redis
      std::vector<Command> again;
      for (std::size_t k = 0; k < replies.size(); ++k) {
        if (needs_script_load(replies[k])) again.push_back((*cmds)[k]);
      }
      if (again.empty()) return;
      ++reloads_;
      again.insert(again.begin(), Command{"SCRIPT", "LOAD", kGiveBackScript});
      shards_[s]->send(std::move(again), [](std::vector<Reply>, std::string) {});
    });
  }
}

}  // namespace tollgate::redis
