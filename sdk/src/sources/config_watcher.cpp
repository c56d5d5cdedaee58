// ConfigWatcher: polls a ConfigSource and applies what changed to a Limiter, backing off
// with jitter while the source fails; FileConfigSource: a JSON file, read again when changed.
#include <fstream>
#include <sstream>
#include <utility>

#include "resilience/backoff.h"
#include "tollgate/config_source.h"
#include "tollgate/limiter.h"

namespace tollgate {

ConfigSource::~ConfigSource() = default;

FileConfigSource::FileConfigSource(std::string path) : path_(std::move(path)) {}

std::string FileConfigSource::describe() const {
  return "file " + path_;
}

// Reads the whole file each poll and compares: a config file is small, and neither a
// rename over it nor a rewrite in place within one timestamp tick can then go unseen.
ConfigSource::Fetched FileConfigSource::fetch() {
  Fetched f;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    f.error = "cannot read " + path_;
    return f;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    f.error = "cannot read " + path_;
    return f;
  }
  f.text = std::move(text).str();
  if (fetched_ && f.text == last_) {
    f.outcome = Outcome::kUnchanged;
    f.text.clear();
    return f;
  }
  fetched_ = true;
  last_ = f.text;
  f.outcome = Outcome::kChanged;
  return f;
}

struct ConfigWatcher::State {
  Limiter& limiter;
  std::unique_ptr<ConfigSource> source;
  ConfigWatchOptions options;
  mutable std::mutex mu;  // poll() at a time; guards all below
  resilience::Backoff backoff;
  Nanos delay;
  Counts counts;
  std::condition_variable stop_cv;
  bool stop = false;

  State(Limiter& l, std::unique_ptr<ConfigSource> s, ConfigWatchOptions o)
      : limiter(l),
        source(std::move(s)),
        options(std::move(o)),
        backoff(resilience::BackoffOptions{options.backoff_base, options.backoff_cap, 0,
                                           resilience::Jitter::kDecorrelated},
                options.seed != 0 ? options.seed : std::random_device{}()),
        delay(options.poll_interval) {}

  void log(LogLevel level, const std::string& line) const noexcept {
    if (!options.log) return;
    try {
      options.log(level, line);
    } catch (...) {
    }
  }
  void failed(std::string error) {
    counts.last_error = std::move(error);
    delay = backoff.next().value_or(options.backoff_cap);
  }
};

ConfigWatcher::ConfigWatcher(Limiter& limiter, std::unique_ptr<ConfigSource> source,
                             ConfigWatchOptions options)
    : state_(std::make_unique<State>(limiter, std::move(source), std::move(options))) {
  if (!state_->options.background_thread) return;
  thread_ = std::thread([this] {
    State& s = *state_;
    std::unique_lock lk(s.mu);
    while (!s.stop) {
      lk.unlock();
      poll();
      lk.lock();
      s.stop_cv.wait_for(lk, s.delay, [&] { return s.stop; });
    }
  });
}

ConfigWatcher::~ConfigWatcher() {
  {
    std::lock_guard lk(state_->mu);
    state_->stop = true;
  }
  state_->stop_cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

ConfigWatcher::Result ConfigWatcher::poll() {
  State& s = *state_;
  std::lock_guard lk(s.mu);
  ++s.counts.polls;
  ConfigSource::Fetched f;
  try {
    f = s.source->fetch();
  } catch (const std::exception& e) {
    f.outcome = ConfigSource::Outcome::kFailed;
    f.error = e.what();
  }
  if (f.outcome == ConfigSource::Outcome::kFailed) {
    ++s.counts.fetch_failed;
    s.log(LogLevel::kWarn,
          "config source " + s.source->describe() + ": " + f.error + " (the running config stays)");
    s.failed(std::move(f.error));
    return Result::kFetchFailed;
  }
  if (f.outcome == ConfigSource::Outcome::kUnchanged) {
    ++s.counts.unchanged;
    s.backoff.reset();  // the source answers again (a refused config stays refused: last_error)
    s.delay = s.options.poll_interval;
    return Result::kUnchanged;
  }
  try {
    s.limiter.update(std::string_view(f.text));  // text that does not parse: refused, counted
  } catch (const std::exception& e) {
    ++s.counts.rejected;
    s.log(LogLevel::kWarn, "config source " + s.source->describe() + ": refused: " + e.what() +
                               " (the running config stays)");
    s.failed(e.what());
    return Result::kRejected;
  }
  ++s.counts.applied;
  s.counts.last_error.clear();
  s.backoff.reset();
  s.delay = s.options.poll_interval;
  s.log(LogLevel::kInfo, "config source " + s.source->describe() + ": new config applied");
  return Result::kApplied;
}

Nanos ConfigWatcher::next_delay() const {
  std::lock_guard lk(state_->mu);
  return state_->delay;
}

ConfigWatcher::Counts ConfigWatcher::counts() const {
  std::lock_guard lk(state_->mu);
  return state_->counts;
}

}  // namespace tollgate
