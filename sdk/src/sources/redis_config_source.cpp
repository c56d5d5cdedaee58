// RedisConfigSource: a config carried in a Redis hash with a version (HMGET version config),
// over one synchronous hiredis connection.
#include <hiredis/hiredis.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "store/redis/shard_url.h"
#include "tollgate/config_source.h"

namespace tollgate {

namespace {

redisReply* send(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<std::size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data()));
}

}  // namespace

struct RedisConfigSource::Connection {
  core::ShardUrl url;
  Nanos timeout;
  redisContext* c = nullptr;
  ~Connection() { close(); }
  void close() {
    if (c != nullptr) redisFree(c);
    c = nullptr;
  }
  // Sends a command; nullptr and `error` set when it could not (the connection is closed then).
  redisReply* command(const std::vector<std::string>& argv, std::string& error) {
    if (c == nullptr && !open(error)) return nullptr;
    redisReply* r = send(c, argv);
    if (r == nullptr) {
      error = c->errstr;
      close();
    }
    return r;
  }
  bool open(std::string& error) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
    const timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
    c = redisConnectWithTimeout(url.host.c_str(), url.port, tv);
    if (c == nullptr || c->err != 0) {
      error = "cannot connect to " + url.redacted() +
              (c != nullptr ? ": " + std::string(c->errstr) : "");
      close();
      return false;
    }
    redisSetTimeout(c, tv);
    std::vector<std::vector<std::string>> setup;
    if (!url.password.empty())
      setup.push_back(url.user.empty() ? std::vector<std::string>{"AUTH", url.password}
                                       : std::vector<std::string>{"AUTH", url.user, url.password});
    if (url.db != 0) setup.push_back({"SELECT", std::to_string(url.db)});
    for (const auto& cmd : setup) {
      redisReply* r = send(c, cmd);
      const bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
      if (r != nullptr) freeReplyObject(r);
      if (!ok) {
        error = cmd[0] + " refused by " + url.redacted();  // never the password
        close();
        return false;
      }
    }
    return true;
  }
};

RedisConfigSource::RedisConfigSource(std::string url, std::string key, Nanos timeout)
    : connection_(std::make_unique<Connection>()), key_(std::move(key)) {
  connection_->url = core::ShardUrl::parse(url);  // throws std::invalid_argument, no password
  connection_->timeout = timeout;
  if (connection_->url.tls) throw std::invalid_argument("rediss:// is not supported for config");
}

RedisConfigSource::~RedisConfigSource() = default;

std::string RedisConfigSource::describe() const {
  return connection_->url.redacted() + " key " + key_;
}

ConfigSource::Fetched RedisConfigSource::fetch() {
  Fetched f;
  std::string error;
  redisReply* r = connection_->command({"HMGET", key_, "version", "config"}, error);
  if (r == nullptr) {
    f.error = error;
    return f;
  }
  std::unique_ptr<redisReply, decltype(&freeReplyObject)> owned(r, freeReplyObject);
  if (r->type == REDIS_REPLY_ERROR) {
    f.error = r->str;
    return f;
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
    f.error = "no version and config in " + key_;
    return f;
  }
  std::string version(r->element[0]->str, r->element[0]->len);
  if (fetched_ && version == version_) {
    f.outcome = Outcome::kUnchanged;
    return f;
  }
  fetched_ = true;
  version_ = std::move(version);
  f.text.assign(r->element[1]->str, r->element[1]->len);
  f.outcome = Outcome::kChanged;
  return f;
}

}  // namespace tollgate
