#include "redis_cluster.h"

#include <algorithm>
#include <array>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tollgate::testing {
namespace {

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<std::string> lines(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) {
    if (!l.empty()) out.push_back(l);
  }
  return out;
}

// "127.0.0.1:7001@17001,hostname" -> 7001
int port_of_address(const std::string& addr) {
  const auto colon = addr.rfind(':', addr.find('@'));
  if (colon == std::string::npos) return -1;
  return std::atoi(addr.c_str() + colon + 1);
}

}  // namespace

RedisCluster::RedisCluster(Options options) : options_(options) {
  const int count = options_.primaries * (1 + options_.replicas_per_primary);
  RedisServer::Options o;
  o.args = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", std::to_string(options_.node_timeout_ms),
            "--cluster-require-full-coverage", options_.require_full_coverage ? "yes" : "no",
            // the layout stays as made: no replica wanders to another primary
            "--cluster-allow-replica-migration", "no",
            // a replica may take over however stale its data: failover tests want that
            "--cluster-replica-validity-factor", "0"};
  for (int i = 0; i < count; ++i) {
    // The bus port would be port + 10000 (beyond 65535 for high free ports): one of its own.
    auto node = o;
    node.args.insert(node.args.end(), {"--cluster-port", std::to_string(free_port())});
    nodes_.push_back(std::make_unique<RedisServer>(node));
  }
  std::vector<std::string> create = {"redis-cli", "--cluster", "create"};
  for (const auto& n : nodes_) create.push_back("127.0.0.1:" + std::to_string(n->port()));
  create.insert(create.end(), {"--cluster-replicas", std::to_string(options_.replicas_per_primary),
                               "--cluster-yes"});
  run_capture(create, 60);
  // Members' destructors stop the servers if this throws.
  if (!wait_until_ok(std::chrono::seconds(20))) {
    throw std::runtime_error("the cluster did not come up within 20 s");
  }
}

RedisCluster::~RedisCluster() = default;

std::vector<std::string> RedisCluster::urls() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) out.push_back(n->url());
  return out;
}

std::size_t RedisCluster::any_running() const {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->running()) return i;
  }
  throw std::runtime_error("no cluster node is running");
}

std::size_t RedisCluster::index_of_port(int port) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->port() == port) return i;
  }
  throw std::runtime_error("no cluster node on port " + std::to_string(port));
}

std::vector<RedisCluster::NodeView> RedisCluster::view() const {
  std::vector<NodeView> out;
  for (const auto& l : lines(cli(any_running(), {"CLUSTER", "NODES"}))) {
    const auto w = words(l);
    if (w.size() < 8) continue;
    NodeView v;
    v.id = w[0];
    v.index = index_of_port(port_of_address(w[1]));
    v.primary = w[2].find("master") != std::string::npos;
    v.failed = w[2].find("fail") != std::string::npos;
    v.primary_id = w[3] == "-" ? "" : w[3];
    out.push_back(v);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.index < b.index; });
  return out;
}

std::string RedisCluster::id_of(std::size_t i) const {
  return cli(i, {"CLUSTER", "MYID"});
}

int RedisCluster::slot_of(const std::string& key) const {
  return std::stoi(cli(any_running(), {"CLUSTER", "KEYSLOT", key}));
}

// CLUSTER SLOTS through redis-cli: per range its start, end, then ip, port, id per node,
// the owner first. Returns {start, end, owner port} per range.
std::vector<std::array<int, 3>> RedisCluster::ranges_seen_by(std::size_t i) const {
  const auto l = lines(cli(i, {"CLUSTER", "SLOTS"}));
  const auto is_int = [](const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit);
  };
  std::vector<std::array<int, 3>> out;
  for (std::size_t k = 0; k + 3 < l.size(); ++k) {
    if (is_int(l[k]) && is_int(l[k + 1]) && l[k + 2] == "127.0.0.1" && is_int(l[k + 3])) {
      out.push_back({std::stoi(l[k]), std::stoi(l[k + 1]), std::stoi(l[k + 3])});
      k += 3;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

int RedisCluster::owner_of(int slot) const {
  for (const auto& r : ranges_seen_by(any_running())) {
    if (slot >= r[0] && slot <= r[1]) return static_cast<int>(index_of_port(r[2]));
  }
  return -1;
}

int RedisCluster::replica_of(std::size_t primary) const {
  const std::string id = id_of(primary);
  for (const auto& v : view()) {
    if (!v.primary && v.primary_id == id) return static_cast<int>(v.index);
  }
  return -1;
}

void RedisCluster::move_slot(int slot, std::size_t to, int batch) {
  const int from_i = owner_of(slot);
  if (from_i < 0) throw std::runtime_error("slot " + std::to_string(slot) + " has no owner");
  const auto from = static_cast<std::size_t>(from_i);
  if (from == to) return;
  const std::string s = std::to_string(slot);
  const std::string from_id = id_of(from), to_id = id_of(to);
  cli(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", from_id});
  cli(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", to_id});
  for (;;) {
    const auto keys = lines(cli(from, {"CLUSTER", "GETKEYSINSLOT", s, std::to_string(batch)}));
    if (keys.empty()) break;
    std::vector<std::string> m = {"MIGRATE", "127.0.0.1", std::to_string(node(to).port()), "", "0",
                                  "5000",    "KEYS"};
    m.insert(m.end(), keys.begin(), keys.end());
    const std::string r = cli(from, m);
    if (r != "OK" && r != "NOKEY") throw std::runtime_error("MIGRATE: " + r);
  }
  cli(to, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  cli(from, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  for (const auto& v : view()) {
    if (v.primary && !v.failed && v.index != to && v.index != from) {
      cli(v.index, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
    }
  }
}

void RedisCluster::promote(std::size_t replica) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto last_ask = std::chrono::steady_clock::time_point{};
  while (std::chrono::steady_clock::now() < deadline) {
    if (cli(replica, {"ROLE"}).rfind("master", 0) == 0) return;
    // Asked again every second: a FORCE failover whose election lost its votes is
    // not retried by the node itself.
    if (std::chrono::steady_clock::now() - last_ask > std::chrono::seconds(1)) {
      cli(replica, {"CLUSTER", "FAILOVER", "FORCE"});
      last_ask = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("node " + std::to_string(replica) + " was not promoted within 10 s");
}

bool RedisCluster::wait_until_ok(std::chrono::milliseconds within) const {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    bool ok = true;
    std::vector<std::array<int, 3>> first;
    bool have_first = false;
    for (std::size_t i = 0; i < nodes_.size() && ok; ++i) {
      if (!nodes_[i]->running()) continue;
      ok = cli(i, {"CLUSTER", "INFO"}).find("cluster_state:ok") != std::string::npos;
      auto ranges = ranges_seen_by(i);
      int covered = 0;
      for (const auto& r : ranges) covered += r[1] - r[0] + 1;
      ok = ok && covered == 16384 && (!have_first || ranges == first);
      // Every node's view is settled: each node it sees answering is a primary that owns
      // slots or a replica (redis-cli makes replicas after the slots are assigned, and
      // the news travels by gossip).
      for (const auto& l : lines(cli(i, {"CLUSTER", "NODES"}))) {
        const auto w = words(l);
        if (w.size() < 8 || w[2].find("fail") != std::string::npos) continue;
        if (w[2].find("master") != std::string::npos && w.size() == 8) ok = false;
      }
      // A replica has its primary's data (the first sync is done).
      const std::string repl = cli(i, {"INFO", "replication"});
      if (repl.find("role:slave") != std::string::npos &&
          repl.find("master_link_status:up") == std::string::npos) {
        ok = false;
      }
      if (!have_first) {
        first = std::move(ranges);
        have_first = true;
      }
    }
    if (ok && have_first) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace tollgate::testing
