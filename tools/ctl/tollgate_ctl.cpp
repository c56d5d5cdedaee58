// tollgate_ctl: an operator's view of one key's global bucket in Redis, against the shards
// or the cluster of a config file (docs/operations in docs/redis.md, "tollgate_ctl").
//
//   tollgate_ctl --config FILE show KEY        policy, shard, Redis key, tokens now, the
//                                                given-back pool, leases and records by instance
//   tollgate_ctl --config FILE top-up KEY N    N more tokens now (token bucket, up to burst;
//                                                windows: N fewer counted this window)
//   tollgate_ctl --config FILE reset KEY       forget the bucket: it starts full, holders'
//                                                reservations are dropped
//
// Passwords in the config's URLs are used, never printed. TLS shards (rediss://) are not
// supported by this tool. Exit status: 0 done, 1 a Redis error, 2 bad usage or config.
#include <hiredis/hiredis.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "limiter/policy_index.h"
#include "store/redis/cluster_map.h"
#include "store/redis/keys.h"
#include "store/redis/shard_url.h"
#include "tollgate/config.h"

namespace {

using tollgate::Config;
using tollgate::PolicyKind;
using tollgate::ResolvedPolicy;

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "tollgate_ctl: %s\n"
               "usage: tollgate_ctl --config FILE (show KEY | top-up KEY N | reset KEY)\n",
               why.c_str());
  std::exit(2);
}

struct Reply {
  std::unique_ptr<redisReply, decltype(&freeReplyObject)> r{nullptr, freeReplyObject};
  redisReply* operator->() const { return r.get(); }
  explicit operator bool() const { return r != nullptr; }
};

class Connection {
 public:
  explicit Connection(const tollgate::core::ShardUrl& url) : url_(url) { open(url.host, url.port); }
  ~Connection() {
    if (c_ != nullptr) redisFree(c_);
  }
  // Sends a command; in a cluster, follows one MOVED or ASK to the key's node.
  Reply command(const std::vector<std::string>& argv) {
    Reply r = send(argv);
    if (r && r->type == REDIS_REPLY_ERROR &&
        (std::strncmp(r->str, "MOVED ", 6) == 0 || std::strncmp(r->str, "ASK ", 4) == 0)) {
      const bool ask = r->str[0] == 'A';
      char host[256] = {0};
      int slot = 0, port = 0;
      if (std::sscanf(r->str + (ask ? 4 : 6), "%d %255[^:]:%d", &slot, host, &port) != 3)
        fail("cannot read the redirect " + std::string(r->str));
      open(host, port);
      if (ask) send({"ASKING"});
      r = send(argv);
    }
    if (!r) fail(c_->errstr);
    if (r->type == REDIS_REPLY_ERROR) fail(r->str);
    return r;
  }

 private:
  [[noreturn]] static void fail(const std::string& why) {
    std::fprintf(stderr, "tollgate_ctl: redis: %s\n", why.c_str());
    std::exit(1);
  }
  void open(const std::string& host, int port) {
    if (c_ != nullptr) redisFree(c_);
    const timeval timeout{2, 0};
    c_ = redisConnectWithTimeout(host.c_str(), port, timeout);
    if (c_ == nullptr || c_->err != 0)
      fail("cannot connect to " + host + ":" + std::to_string(port) + ": " +
           (c_ != nullptr ? c_->errstr : "no memory"));
    redisSetTimeout(c_, timeout);
    if (!url_.password.empty()) {
      Reply r = url_.user.empty() ? send({"AUTH", url_.password})
                                  : send({"AUTH", url_.user, url_.password});
      if (!r || r->type == REDIS_REPLY_ERROR) fail("AUTH refused");  // never the password
    }
    if (url_.db != 0) send({"SELECT", std::to_string(url_.db)});
  }
  Reply send(const std::vector<std::string>& argv) {
    std::vector<const char*> args;
    std::vector<std::size_t> lens;
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply r;
    r.r.reset(static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(args.size()), args.data(), lens.data())));
    return r;
  }
  tollgate::core::ShardUrl url_;
  redisContext* c_ = nullptr;
};

// Adds `n` tokens to a token bucket now (server time), up to its burst, atomically with any
// lease: the same arithmetic as lease.lua's bucket_state.
constexpr const char* kTopUpBucket = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'l', 'ts')
local level, ts = tonumber(s[1]), tonumber(s[2])
if level == nil then level = burst ts = now
elseif now > ts then level = math.min(burst, level + rate * (now - ts) / 1e6) ts = now end
level = math.min(burst, level + n)
redis.call('HSET', KEYS[1], 'l', string.format('%.17g', level), 'ts', string.format('%.0f', ts))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(1000, math.ceil((burst - level) / rate * 1000) + 1000)))
return string.format('%.17g', level)
)";

// Counts `n` fewer admissions in a window's current count.
constexpr const char* kTopUpWindow = R"(
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
c = math.max(0, c - tonumber(ARGV[1]))
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'c', string.format('%.0f', c)) end
return c
)";

std::string kind_name(PolicyKind k) {
  return std::string(tollgate::to_string(k));
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config") {
      if (++i >= argc) usage("no file after --config");
      config_path = argv[i];
    } else {
      rest.push_back(a);
    }
  }
  if (config_path.empty() || rest.size() < 2) usage("a config file, a command and a key");
  const std::string& cmd = rest[0];
  const std::string& key = rest[1];
  if ((cmd == "top-up") != (rest.size() == 3) || rest.size() > 3) usage("wrong arguments");
  if (cmd != "show" && cmd != "top-up" && cmd != "reset") usage("unknown command " + cmd);

  Config config;
  try {
    config = Config::from_json_file(config_path);
  } catch (const std::exception& e) {
    usage(e.what());
  }
  if (config.store.type != "redis" && config.store.type != "redis_cluster")
    usage("the config's store is " + config.store.type + ", not Redis");
  const std::vector<ResolvedPolicy> policies = config.resolved_policies();
  const auto idx = tollgate::core::PolicyIndex(config.policies).match(key);
  if (!idx) usage("no policy matches " + key);
  const ResolvedPolicy& p = policies[*idx];
  const std::string group = p.group.empty() ? key : p.group;
  const std::string bucket = tollgate::redis::bucket_key(group, p.name, key);

  // The shard the Redis store routes the group to, or the cluster node of the slot.
  std::string url_text;
  std::string where;
  if (config.store.type == "redis") {
    const auto n = static_cast<std::int32_t>(config.store.shards.size());
    const std::int32_t shard = tollgate::redis::shard_of(group, n);
    url_text = config.store.shards[static_cast<std::size_t>(shard)];
    where = "shard " + std::to_string(shard) + " of " + std::to_string(n);
  } else {
    url_text = config.store.nodes.at(0);
    where = "cluster slot " + std::to_string(tollgate::redis::group_slot(group));
  }
  const tollgate::core::ShardUrl url = tollgate::core::ShardUrl::parse(url_text);
  if (url.tls) usage("rediss:// shards are not supported by this tool");
  Connection redis(url);

  std::printf("key      %s\npolicy   %s (%s)\nredis    %s, %s, %s\n", key.c_str(), p.name.c_str(),
              kind_name(p.kind).c_str(), where.c_str(), url.redacted().c_str(), bucket.c_str());
  if (cmd == "reset") {
    Reply r = redis.command({"DEL", bucket});
    std::printf("reset    %s\n", r->integer == 1 ? "bucket deleted: it starts full" : "no bucket");
    return 0;
  }
  if (cmd == "top-up") {
    char* end = nullptr;
    const double n = std::strtod(rest[2].c_str(), &end);
    if (end == rest[2].c_str() || *end != '\0' || !(n > 0)) usage("N must be a number > 0");
    if (p.kind == PolicyKind::kTokenBucket) {
      Reply r = redis.command({"EVAL", kTopUpBucket, "1", bucket, std::to_string(p.rate),
                               std::to_string(p.effective_burst()), rest[2]});
      std::printf("top-up   %s tokens: %s now\n", rest[2].c_str(), r->str);
    } else if (p.kind != PolicyKind::kConcurrency) {
      Reply r = redis.command({"EVAL", kTopUpWindow, "1", bucket, rest[2]});
      std::printf("top-up   %s: the window counts %lld now\n", rest[2].c_str(), r->integer);
    } else {
      usage("a concurrency policy has no tokens to top up (reset drops its reservations)");
    }
    return 0;
  }

  Reply time = redis.command({"TIME"});
  const double now_us = std::atof(time->element[0]->str) * 1e6 + std::atof(time->element[1]->str);
  Reply all = redis.command({"HGETALL", bucket});
  Reply ttl = redis.command({"PTTL", bucket});
  std::map<std::string, std::string> fields;
  for (std::size_t i = 0; i + 1 < all->elements; i += 2)
    fields[all->element[i]->str] = all->element[i + 1]->str;
  if (fields.empty()) {
    std::printf("bucket   none (untouched, or expired): it starts full at the next lease\n");
    return 0;
  }
  std::printf("ttl      %lld ms\n", ttl->integer);
  auto num = [&](const char* f) { return fields.count(f) ? std::atof(fields[f].c_str()) : 0.0; };
  if (p.kind == PolicyKind::kTokenBucket) {
    const double burst = p.effective_burst();
    double level = num("l");
    if (fields.count("ts") && now_us > num("ts"))
      level = std::min(burst, level + p.rate * (now_us - num("ts")) / 1e6);
    std::printf("tokens   %.2f of %.0f now (refilling at %g/s)\n", level, burst, p.rate);
    if (num("p") > 0 && num("pe") > now_us)
      std::printf("pool     %.0f given back, usable for %.0f ms more\n", num("p"),
                  (num("pe") - now_us) / 1e3);
    if (fields.count("sl"))
      std::printf("share    pacing level %.2f (the key's part of its group's budget)\n", num("sl"));
  } else if (p.kind == PolicyKind::kConcurrency) {
    std::printf("limit    %llu permits\n", static_cast<unsigned long long>(p.limit));
  } else {
    std::printf("window   %.0f counted of %llu (previous window %.0f)\n", num("c"),
                static_cast<unsigned long long>(p.limit), num("pv"));
  }
  // Outstanding leases by instance: a concurrency key's reservations (holder -> permits:expiry),
  // a shared bucket's instance records (i:<holder> -> demand,held,seen,level,ts).
  std::uint64_t reserved = 0;
  for (const auto& [f, v] : fields) {
    if (p.kind == PolicyKind::kConcurrency) {
      unsigned long long n = 0;
      double exp = 0;
      if (std::sscanf(v.c_str(), "%llu:%lf", &n, &exp) != 2) continue;
      reserved += n;
      std::printf("holder   %s: %llu permits, for %.0f ms more\n", f.c_str(), n,
                  (exp - now_us) / 1e3);
    } else if (f.rfind("i:", 0) == 0) {
      double demand = 0, held = 0;
      std::sscanf(v.c_str(), "%lf,%lf", &demand, &held);
      std::printf("instance %s: %.0f tokens held unspent, demand %.1f/s\n", f.c_str() + 2, held,
                  demand);
    }
  }
  if (p.kind == PolicyKind::kConcurrency)
    std::printf("reserved %llu of %llu\n", static_cast<unsigned long long>(reserved),
                static_cast<unsigned long long>(p.limit));
  // Debt: what instances admitted beyond their leases (over-settled reservations, cold-key
  // allowances) is repaid from their next leases; what those could not pay was charged here
  // (GiveBack::debt): a level below zero, a window counted past its limit.
  double owed = 0;
  if (p.kind == PolicyKind::kTokenBucket) {
    double level = num("l");
    if (fields.count("ts") && now_us > num("ts"))
      level = std::min(p.effective_burst(), level + p.rate * (now_us - num("ts")) / 1e6);
    owed = std::max(0.0, -level);
  } else if (p.kind != PolicyKind::kConcurrency) {
    owed = std::max(0.0, num("c") - static_cast<double>(p.limit));
  }
  if (owed > 0) {
    std::printf("debt     %.0f tokens charged by instances beyond their leases, not yet refilled\n",
                owed);
  } else {
    std::printf(
        "debt     none in the store (debts are repaid by each instance's next leases; what "
        "those cannot pay is charged here)\n");
  }
  return 0;
}
