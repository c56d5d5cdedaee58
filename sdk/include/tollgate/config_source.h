// Config sources: where a running Limiter's config lives, and the watcher that keeps the
// limiter in step with it (docs/configuration.md, "Config sources").
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tollgate/clock.h"
#include "tollgate/export.h"
#include "tollgate/observer.h"

namespace tollgate {

class Limiter;

// Where a config lives. fetch() is called by one ConfigWatcher at a time.
class TOLLGATE_API ConfigSource {
 public:
  enum class Outcome : std::uint8_t {
    kChanged = 0,    // `text` holds a config that differs from the last one fetched
    kUnchanged = 1,  // the same as the last fetch (an HTTP 304, an untouched file)
    kFailed = 2,     // could not be read; `error` says why (never a password)
  };
  struct Fetched {
    Outcome outcome = Outcome::kFailed;
    std::string text;
    std::string error;
  };
  virtual ~ConfigSource();
  virtual Fetched fetch() = 0;
  // Where it reads from, for logs: a path or a URL without its user and password.
  virtual std::string describe() const = 0;
};

// A JSON file, read again when it changes: replaced (a rename over it, as config
// management tools and Kubernetes' ConfigMap volumes do) or rewritten in place. A file
// caught half-written fails to parse, is refused, and is read again on the next poll.
class TOLLGATE_API FileConfigSource final : public ConfigSource {
 public:
  explicit FileConfigSource(std::string path);
  Fetched fetch() override;
  std::string describe() const override;

 private:
  std::string path_;
  bool fetched_ = false;
  std::string last_;  // the text of the last fetch
};

// A Redis hash that carries the config with a version, so that the quota store itself can
// bring policy changes to every instance: HSET <key> version <v> config <json>. A poll reads
// both fields (HMGET); a version other than the last one read is a change. redis:// only
// (user and password from the URL, never logged); one connection, opened again after an
// error. The key is the operator's: Tollgate only reads it.
class TOLLGATE_API RedisConfigSource final : public ConfigSource {
 public:
  RedisConfigSource(std::string url, std::string key, Nanos timeout = std::chrono::seconds{2});
  ~RedisConfigSource() override;
  Fetched fetch() override;
  std::string describe() const override;

 private:
  struct Connection;
  std::unique_ptr<Connection> connection_;
  std::string key_;
  bool fetched_ = false;
  std::string version_;  // of the last fetch
};

struct ConfigWatchOptions {
  Nanos poll_interval = std::chrono::seconds{5};
  // After a failure (the source unreadable, or its config refused): exponential backoff
  // with decorrelated jitter from backoff_base up to backoff_cap, then poll_interval again.
  Nanos backoff_base = std::chrono::seconds{1};
  Nanos backoff_cap = std::chrono::seconds{60};
  std::uint64_t seed = 0;         // of the jitter; 0: random
  bool background_thread = true;  // false: the owner calls poll() (tests)
  // Where fetch failures and applied changes are told (the watcher's thread); may be empty.
  std::function<void(LogLevel, std::string_view)> log;
};

// Keeps a Limiter's config in step with a source: polls it, and applies what changed with
// Limiter::update. What cannot be read or is refused leaves the running config (the last
// good one) in force. Thread-safe; the limiter must outlive the watcher.
class TOLLGATE_API ConfigWatcher {
 public:
  enum class Result : std::uint8_t {
    kApplied = 0,      // a new config is in force
    kUnchanged = 1,    // nothing new at the source
    kFetchFailed = 2,  // the source could not be read
    kRejected = 3,     // its config was refused (invalid, or a change that needs a new Limiter)
  };
  struct Counts {
    std::uint64_t polls = 0, applied = 0, unchanged = 0, fetch_failed = 0, rejected = 0;
    std::string last_error;  // empty once a poll succeeds again
  };

  ConfigWatcher(Limiter& limiter, std::unique_ptr<ConfigSource> source,
                ConfigWatchOptions options = {});
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Polls the source once now. The watcher's thread calls it every next_delay().
  Result poll();
  // How long after the last poll the next one is due: poll_interval, or after failures
  // the backoff (with jitter).
  Nanos next_delay() const;
  Counts counts() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::thread thread_;
};

}  // namespace tollgate
