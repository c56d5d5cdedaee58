#include "store/redis/redis_cluster.h"

#include <boost/asio/post.hpp>
#include <cmath>
#include <map>

#include "store/redis/scripts.h"

namespace tollgate::redis {

// One send_leases() call: its requests, the answers so far, and whom to tell.
struct RedisClusterTransport::Call {
  std::vector<const LeaseRequest*> requests;
  std::vector<LeaseGrant> grants;
  std::vector<int> hops;   // redirections per request
  std::vector<int> tries;  // TRYAGAIN / CLUSTERDOWN resends per request
  std::size_t open = 0;    // requests without a final answer yet
  std::string error;       // a part failed in transport: the whole call fails (and is retried)
  bool written = false;    // some part reached a server (then the call is not `unsent`)
  bool finished = false;
  std::function<void(resilience::ShardOutcome)> done;
};

RedisClusterTransport::RedisClusterTransport(const StoreConfig& config)
    : config_(config),
      work_(asio::make_work_guard(io_)),
      period_(io_),
      refresh_timer_(io_),
      wait_replicas_(static_cast<std::size_t>(config.wait_replicas)),
      wait_timeout_ms_(std::to_string(
          std::chrono::duration_cast<std::chrono::milliseconds>(config.wait_timeout).count())),
      lease_sha_(lua::kLeaseSha1),
      give_back_sha_(lua::kGiveBackSha1) {
  for (auto& o : owner_) o.store(kUnknown, std::memory_order_relaxed);
  for (std::size_t i = 0; i < config.nodes.size(); ++i) {
    Endpoint endpoint = endpoint_at(config.nodes, i, "store.nodes");
    if (i == 0) first_ = endpoint;
    auto o = connection_options(config, std::move(endpoint), observer_);
    o.on_connect.clear();  // asked for the slot map only
    try {
      seeds_.push_back(Connection::create(io_, std::move(o)));
    } catch (const std::exception& ex) {  // e.g. a CA file that cannot be read
      throw ConfigError("store.tls_ca_file", ex.what());
    }
  }
  if (seeds_.empty()) throw ConfigError("store.nodes", "at least one redis:// URL");
  asio::post(io_, [this] {
    refresh();
    arm_period();
  });
  thread_ = std::thread([this] { io_.run(); });
}

RedisClusterTransport::~RedisClusterTransport() {
  close();
}

void RedisClusterTransport::close() {
  std::call_once(closed_, [this] {
    asio::post(io_, [this] {
      closing_ = true;
      period_.cancel();
      refresh_timer_.cancel();
      // Fail what is in flight (every callback is called), then stop the thread.
      for (auto& n : nodes_) {
        if (n.connection) n.connection->close();
      }
      for (auto& c : seeds_) c->close();
      asio::post(io_, [this] { io_.stop(); });
    });
    work_.reset();
    if (thread_.joinable()) thread_.join();
  });
}

std::size_t RedisClusterTransport::shard_of(const Policy& policy, std::string_view key) const {
  const auto o = owner_[static_cast<std::size_t>(group_slot(group_of(policy, key)))].load(
      std::memory_order_relaxed);
  return o == kUnknown ? 0 : o;
}

std::string RedisClusterTransport::shard_name(std::size_t shard) const {
  return "cluster primary #" + std::to_string(shard);
}

std::string RedisClusterTransport::owner_of_slot(int slot) const {
  const auto o = owner_.at(static_cast<std::size_t>(slot)).load(std::memory_order_relaxed);
  if (o == kUnknown) return {};
  std::lock_guard lk(names_mu_);
  return names_[o];
}

std::string RedisClusterTransport::node_name(std::size_t i) const {
  return nodes_[i].connection ? nodes_[i].connection->endpoint().redacted() : shard_name(i);
}

RedisClusterTransport::Counters RedisClusterTransport::counters() const noexcept {
  Counters c = RedisShards::counters();
  c.redirects = redirects_.load();
  c.cluster_retries = cluster_retries_.load();
  c.topology_refreshes = refreshes_.load();
  return c;
}

void RedisClusterTransport::send_leases(std::size_t, std::vector<const LeaseRequest*> requests,
                                        std::function<void(resilience::ShardOutcome)> done) {
  auto call = std::make_shared<Call>();
  call->grants.resize(requests.size());
  call->hops.assign(requests.size(), 0);
  call->tries.assign(requests.size(), 0);
  call->open = requests.size();
  call->requests = std::move(requests);
  call->done = std::move(done);
  asio::post(io_, [this, call = std::move(call)]() mutable { start(std::move(call)); });
}

void RedisClusterTransport::start(std::shared_ptr<Call> call) {
  if (!known_) {
    waiting_for_map_.push_back(std::move(call));
    refresh();
    return;
  }
  std::vector<std::size_t> idx(call->requests.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  route(std::move(call), std::move(idx));
}

void RedisClusterTransport::route(std::shared_ptr<Call> call, std::vector<std::size_t> idx) {
  std::map<std::size_t, std::vector<std::size_t>> by_node;
  for (std::size_t i : idx) {
    const LeaseRequest& r = *call->requests[i];
    const int slot = group_slot(group_of(*r.policy, r.key));
    const auto o = owner_[static_cast<std::size_t>(slot)].load(std::memory_order_relaxed);
    if (o == kUnknown || !nodes_[o].connection || closing_) {
      call->grants[i].ok = false;
      call->grants[i].error = "redis: no primary known for slot " + std::to_string(slot);
      --call->open;
      continue;
    }
    by_node[o].push_back(i);
  }
  for (auto& [node, part] : by_node) send_part(call, node, std::move(part), false, false);
  finish_if_done(call);
}

void RedisClusterTransport::send_part(std::shared_ptr<Call> call, std::size_t node,
                                      std::vector<std::size_t> idx, bool asking, bool reload) {
  std::vector<Command> cmds;
  cmds.reserve(idx.size() * (asking ? 2 : 1) + 2);
  if (reload) cmds.push_back({"SCRIPT", "LOAD", kLeaseScript});
  for (std::size_t i : idx) {
    if (asking) cmds.push_back({"ASKING"});  // good for the next command only
    cmds.push_back(lease_command(lease_sha_, *call->requests[i]));
  }
  // A grant counts once a replica has it (store.wait_replicas): WAIT after the calls.
  if (wait_replicas_ > 0)
    cmds.push_back({"WAIT", std::to_string(wait_replicas_), wait_timeout_ms_});
  calls_ += idx.size();
  ++batches_;
  nodes_[node].connection->send(
      std::move(cmds),
      [this, call, node, idx, asking, reload](std::vector<Reply> replies, std::string error) {
        if (!error.empty()) {
          // "unavailable": never written, so it did not run. A resend is not that: the
          // call's first part did run.
          if (!Connection::refused(error) || reload || asking) call->written = true;
          if (call->error.empty()) call->error = node_name(node) + ": " + error;
          call->open -= idx.size();
          refresh();  // the node may be gone: who owns its slots now?
          finish_if_done(call);
          return;
        }
        call->written = true;
        std::size_t pos = reload ? 1 : 0;
        std::vector<std::size_t> again, later;
        std::map<std::size_t, std::vector<std::size_t>> moved, asked;
        std::vector<LeaseGrant*> answered;
        bool map_changed = false;
        const auto fail = [&](std::size_t i, const Reply& r, const std::string& why) {
          call->grants[i].ok = false;
          call->grants[i].error = "redis: " + why + ": " + r.str;
          --call->open;
        };
        for (std::size_t i : idx) {
          if (asking) ++pos;  // ASKING's OK
          const Reply& r = replies[pos++];
          if (!reload && r.error_code_is("NOSCRIPT")) {
            again.push_back(i);  // the script did not run: sending it again is safe
            continue;
          }
          if (auto redirect = parse_redirect(r)) {
            if (++call->hops[i] > kMaxHops) {
              fail(i, r, "too many redirections");
              continue;
            }
            const int to = node_index(redirect->host, redirect->port, nullptr);
            if (to < 0) {
              fail(i, r, "no shard index left for the node");
              continue;
            }
            ++redirects_;
            if (redirect->ask) {
              asked[static_cast<std::size_t>(to)].push_back(i);
            } else {
              owner_[static_cast<std::size_t>(redirect->slot)].store(static_cast<std::uint8_t>(to),
                                                                     std::memory_order_relaxed);
              nodes_[static_cast<std::size_t>(to)].owns = true;
              map_changed = true;
              moved[static_cast<std::size_t>(to)].push_back(i);
            }
            continue;
          }
          const bool down = r.error_code_is("CLUSTERDOWN");
          if (down || r.error_code_is("TRYAGAIN")) {
            map_changed = map_changed || down;
            if (++call->tries[i] > kClusterRetries) {
              fail(i, r, "after " + std::to_string(kClusterRetries) + " retries");
              continue;
            }
            later.push_back(i);
            continue;
          }
          call->grants[i] = to_grant(r);
          answered.push_back(&call->grants[i]);
          --call->open;
        }
        if (wait_replicas_ > 0 && !apply_replica_acks(replies.back(), wait_replicas_, answered)) {
          ++unreplicated_;
        }
        if (map_changed) refresh();
        for (auto& [to, part] : moved) send_part(call, to, std::move(part), false, false);
        for (auto& [to, part] : asked) send_part(call, to, std::move(part), true, false);
        if (!again.empty()) {
          ++reloads_;
          send_part(call, node, std::move(again), asking, true);
        }
        if (!later.empty()) {
          ++cluster_retries_;
          int n = 0;
          for (std::size_t i : later) n = std::max(n, call->tries[i]);
          const double u = std::uniform_real_distribution<double>(0, 0.2)(jitter_);
          const auto delay = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
              kClusterRetryDelay * std::ldexp(1.0 + u, n - 1));
          auto timer = std::make_shared<asio::steady_timer>(io_, delay);
          timer->async_wait([this, timer, call, later = std::move(later)](
                                const boost::system::error_code& ec) mutable {
            if (ec) return;
            route(call, std::move(later));
          });
        }
        finish_if_done(call);
      });
}

void RedisClusterTransport::finish_if_done(const std::shared_ptr<Call>& call) {
  if (call->open != 0 || call->finished) return;
  call->finished = true;
  resilience::ShardOutcome out;
  if (!call->error.empty()) {
    out.error = call->error;
    out.unsent = !call->written;
  } else {
    out.grants = std::move(call->grants);
  }
  call->done(std::move(out));
}

void RedisClusterTransport::send_give_backs(std::size_t, std::vector<GiveBack> batch) {
  asio::post(io_, [this, batch = std::move(batch)]() mutable {
    if (!known_) {
      // Before the first slot map nothing can be routed. A give-back may carry a debt
      // (tokens admitted beyond the leases): dropped, it would grant them silently. It
      // waits for the map, as lease calls do (sent from on_topology).
      give_backs_waiting_for_map_.push_back(std::move(batch));
      refresh();
      return;
    }
    route_give_backs(batch);
  });
}

void RedisClusterTransport::route_give_backs(const std::vector<GiveBack>& batch) {
  std::map<std::size_t, std::vector<Command>> by_node;
  for (const GiveBack& g : batch) {
    if (!g.policy) continue;
    const auto o = owner_[static_cast<std::size_t>(group_slot(group_of(*g.policy, g.key)))].load(
        std::memory_order_relaxed);
    if (o == kUnknown || !nodes_[o].connection || closing_) continue;  // best effort
    by_node[o].push_back(give_back_command(give_back_sha_, g));
  }
  for (auto& entry : by_node) {
    const auto node = entry.first;  // a structured binding cannot be captured by clang 14
    auto cmds = std::make_shared<std::vector<Command>>(std::move(entry.second));
    calls_ += cmds->size();
    ++batches_;
    nodes_[node].connection->send(
        *cmds, [this, node, cmds](std::vector<Reply> replies, std::string error) {
          if (!error.empty()) return;  // best effort: the tokens expire in Redis
          std::vector<Command> again;
          for (std::size_t k = 0; k < replies.size(); ++k) {
            if (replies[k].error_code_is("NOSCRIPT")) again.push_back((*cmds)[k]);
            // Not followed: tokens not given back expire; the map is read again.
            if (parse_redirect(replies[k])) refresh();
          }
          if (again.empty()) return;
          ++reloads_;
          again.insert(again.begin(), Command{"SCRIPT", "LOAD", kGiveBackScript});
          nodes_[node].connection->send(std::move(again), [](std::vector<Reply>, std::string) {});
        });
  }
}

void RedisClusterTransport::arm_period() {
  period_.expires_after(kTopologyPeriod);
  period_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || closing_) return;
    refresh();
    arm_period();
  });
}

void RedisClusterTransport::refresh() {
  if (closing_) return;
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - last_refresh_ < kMinRefreshGap) {
    if (!refresh_scheduled_) {
      refresh_scheduled_ = true;
      refresh_timer_.expires_at(last_refresh_ + kMinRefreshGap);
      refresh_timer_.async_wait([this](const boost::system::error_code& ec) {
        refresh_scheduled_ = false;
        if (!ec) refresh();
      });
    }
    return;
  }
  refreshing_ = true;
  last_refresh_ = now;
  ++refreshes_;
  // The primaries first (they are answering leases), then the nodes configured.
  auto candidates = std::make_shared<std::vector<std::shared_ptr<Connection>>>();
  for (const Node& n : nodes_) {
    if (n.connection && n.owns) candidates->push_back(n.connection);
  }
  candidates->insert(candidates->end(), seeds_.begin(), seeds_.end());
  query_topology(0, std::move(candidates), false);
}

void RedisClusterTransport::query_topology(
    std::size_t k, std::shared_ptr<std::vector<std::shared_ptr<Connection>>> candidates,
    bool slots) {
  if (k >= candidates->size()) return topology_failed(last_topology_error_);
  auto& c = (*candidates)[k];
  c->send({{"CLUSTER", slots ? "SLOTS" : "SHARDS"}},
          [this, k, candidates, slots](std::vector<Reply> replies, std::string error) {
            if (closing_) return;
            const std::string who = (*candidates)[k]->endpoint().redacted();
            if (!error.empty()) {
              last_topology_error_ = who + ": " + error;
              return query_topology(k + 1, candidates, false);
            }
            const Reply& r = replies[0];
            if (r.is_error()) {
              // Older than Redis 7: no CLUSTER SHARDS.
              if (!slots && r.str.find("nknown subcommand") != std::string::npos) {
                return query_topology(k, candidates, true);
              }
              last_topology_error_ = who + ": " + r.str;
              return query_topology(k + 1, candidates, false);
            }
            std::vector<SlotRange> ranges;
            try {
              ranges = slots ? parse_cluster_slots(r) : parse_cluster_shards(r, first_.tls);
            } catch (const std::exception& ex) {
              last_topology_error_ = who + ": " + ex.what();
              return query_topology(k + 1, candidates, false);
            }
            if (ranges.empty()) {  // a node that has not joined (yet)
              last_topology_error_ = who + ": knows no slots";
              return query_topology(k + 1, candidates, false);
            }
            apply(ranges);
            map_failing_ = false;
            refreshing_ = false;
            if (refresh_again_) {
              refresh_again_ = false;
              refresh();
            }
          });
}

void RedisClusterTransport::topology_failed(const std::string& why) {
  refreshing_ = false;
  if (!map_failing_) {  // logged once until a map is read again
    map_failing_ = true;
    if (auto ob = observer_->get()) ob->on_log(LogLevel::kWarn, "cannot read the slot map: " + why);
  }
  // Calls that wait for the first map fail unsent (nothing was written for them); the
  // next call reads the map again.
  auto waiting = std::move(waiting_for_map_);
  waiting_for_map_.clear();
  for (auto& call : waiting) {
    resilience::ShardOutcome out;
    out.error = "cluster slot map unknown (" + why + ")";
    out.unsent = true;
    call->finished = true;
    call->done(std::move(out));
  }
  if (refresh_again_) {
    refresh_again_ = false;
    refresh();
  }
}

int RedisClusterTransport::node_index(const std::string& host, int port,
                                      const std::vector<SlotRange>* next_map) {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].connection && nodes_[i].host == host && nodes_[i].port == port) {
      return static_cast<int>(i);
    }
  }
  const auto in_next = [&](const Node& n) {
    if (next_map == nullptr) return n.owns;
    for (const auto& r : *next_map) {
      if (r.host == n.host && r.port == n.port) return true;
    }
    return false;
  };
  int pick = -1;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (!n.connection) {
      pick = static_cast<int>(i);
      break;
    }
    if (!in_next(n) &&
        (pick < 0 || n.last_owned < nodes_[static_cast<std::size_t>(pick)].last_owned)) {
      pick = static_cast<int>(i);
    }
  }
  if (pick < 0) {
    if (auto ob = observer_->get()) {
      ob->on_log(LogLevel::kError, "more than " + std::to_string(kMaxPrimaries) +
                                       " cluster primaries: " + host + ":" + std::to_string(port) +
                                       " is not used");
    }
    return -1;
  }
  Node& n = nodes_[static_cast<std::size_t>(pick)];
  if (n.connection) n.connection->close();
  Endpoint e = first_;
  e.host = host;
  e.port = static_cast<std::uint16_t>(port);
  e.db = 0;
  n.host = host;
  n.port = port;
  n.owns = false;
  n.connection = Connection::create(io_, connection_options(config_, std::move(e), observer_));
  {
    std::lock_guard lk(names_mu_);
    names_[static_cast<std::size_t>(pick)] = host + ":" + std::to_string(port);
  }
  return pick;
}

void RedisClusterTransport::apply(const std::vector<SlotRange>& ranges) {
  ++generation_;
  std::vector<std::uint8_t> next(kClusterSlots, kUnknown);
  std::array<bool, kMaxPrimaries> owns{};
  for (const SlotRange& r : ranges) {
    const int i = node_index(r.host, r.port, &ranges);
    if (i < 0) continue;
    owns[static_cast<std::size_t>(i)] = true;
    for (int s = r.first; s <= r.last; ++s) {
      next[static_cast<std::size_t>(s)] = static_cast<std::uint8_t>(i);
    }
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    n.owns = owns[i];
    if (owns[i]) {
      n.last_owned = generation_;
    } else if (n.connection) {
      // A node that owns no slot (a dead primary, a node resharded empty) is not kept
      // connected; a MOVED to it later connects again.
      n.connection->close();
      n.connection.reset();
    }
  }
  for (std::size_t s = 0; s < next.size(); ++s) owner_[s].store(next[s], std::memory_order_relaxed);
  if (!known_) {
    known_ = true;
    auto waiting = std::move(waiting_for_map_);
    waiting_for_map_.clear();
    // Give-backs first: they were sent before the calls that wait with them.
    auto give_backs = std::move(give_backs_waiting_for_map_);
    give_backs_waiting_for_map_.clear();
    for (const auto& batch : give_backs) route_give_backs(batch);
    for (auto& call : waiting) start(std::move(call));
  }
}

}  // namespace tollgate::redis
