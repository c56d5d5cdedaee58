// The C++ front door: a small HTTP service on cpprestsdk's http_listener that limits each
// tenant through Tollgate (samples/cpp/front_door/README.md).
//
//   GET|POST /infer   X-Tenant: <id> (the key tenant:<id>), X-Cost: <units> (default 1)
//                     200 admitted; 429 with Retry-After and X-RateLimit-Reason; 400 bad input
//   GET /metrics      Prometheus text (tollgate::prometheus_text)
//   GET /healthz      each shard's circuit breaker; 503 while one is open
//
// Its policies come from a source it watches (--config FILE or --config-url URL), so that
// a change there is in force without a restart.
#include <cpprest/http_listener.h>
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "tollgate/config_source.h"
#include "tollgate/http_config_source.h"
#include "tollgate/prometheus.h"
#include "tollgate/tollgate.hpp"

namespace {

using web::http::http_request;
using web::http::status_codes;

struct Args {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string config_file;
  std::string config_url;
  int poll_ms = 1000;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "front_door: %s\n"
               "usage: front_door [--host H] [--port N] (--config FILE | --config-url URL) "
               "[--poll-ms MS]\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(("no value after " + arg).c_str());
    const std::string value = argv[++i];
    if (arg == "--host") {
      a.host = value;
    } else if (arg == "--port") {
      a.port = std::atoi(value.c_str());
    } else if (arg == "--config") {
      a.config_file = value;
    } else if (arg == "--config-url") {
      a.config_url = value;
    } else if (arg == "--poll-ms") {
      a.poll_ms = std::atoi(value.c_str());
    } else {
      usage(("unknown argument " + arg).c_str());
    }
  }
  if (a.config_file.empty() == a.config_url.empty()) usage("one of --config and --config-url");
  if (a.port <= 0 || a.port > 65535 || a.poll_ms <= 0) usage("bad --port or --poll-ms");
  return a;
}

std::unique_ptr<tollgate::ConfigSource> source_of(const Args& a) {
  if (!a.config_file.empty()) return std::make_unique<tollgate::FileConfigSource>(a.config_file);
  return std::make_unique<tollgate::HttpConfigSource>(a.config_url);
}

// A header's value, or "" when absent.
std::string header(const http_request& req, const char* name) {
  auto it = req.headers().find(name);
  return it == req.headers().end() ? std::string() : it->second;
}

void reply(const http_request& req, web::http::status_code status, const std::string& body,
           const std::string& type = "application/json") {
  web::http::http_response r(status);
  r.set_body(body, type);
  req.reply(r);
}

void infer(tollgate::Limiter& limiter, const http_request& req) {
  const std::string tenant = header(req, "X-Tenant");
  if (tenant.empty()) return reply(req, status_codes::BadRequest, R"({"error": "no X-Tenant"})");
  std::uint64_t cost = 1;
  if (const std::string c = header(req, "X-Cost"); !c.empty()) {
    char* end = nullptr;
    cost = std::strtoull(c.c_str(), &end, 10);
    if (end == c.c_str() || *end != '\0' || cost == 0)
      return reply(req, status_codes::BadRequest, R"({"error": "X-Cost: a whole number >= 1"})");
  }
  const tollgate::Decision d = limiter.try_acquire("tenant:" + tenant, cost);
  const std::string reason(tollgate::to_string(d.reason));
  if (d.allowed) {
    return reply(req, status_codes::OK,
                 R"({"admitted": true, "reason": ")" + reason + R"(", "remaining": )" +
                     std::to_string(d.remaining) + "}");
  }
  if (d.reason == tollgate::Reason::kInvalidArgument || d.reason == tollgate::Reason::kNoPolicy) {
    return reply(req, status_codes::BadRequest, R"({"error": ")" + reason + R"("})");
  }
  web::http::http_response r(status_codes::TooManyRequests);
  const double secs = std::chrono::duration<double>(d.retry_after).count();
  r.headers().add("Retry-After",
                  std::to_string(std::max<long long>(1, std::llround(std::ceil(secs)))));
  r.headers().add("X-RateLimit-Reason", reason);
  r.set_body(R"({"admitted": false, "reason": ")" + reason + R"("})", "application/json");
  req.reply(r);
}

void healthz(tollgate::Limiter& limiter, const http_request& req) {
  const tollgate::Stats s = limiter.stats();
  bool open = false;
  std::string shards;
  for (tollgate::BreakerState b : s.breakers) {
    open = open || b == tollgate::BreakerState::kOpen;
    shards += (shards.empty() ? "\"" : ", \"") + std::string(tollgate::to_string(b)) + "\"";
  }
  reply(req, open ? status_codes::ServiceUnavailable : status_codes::OK,
        std::string(R"({"status": ")") + (open ? "degraded" : "ok") + R"(", "shards": [)" + shards +
            R"(], "config_updates": )" + std::to_string(s.config_updates) +
            R"(, "config_rejected": )" + std::to_string(s.config_rejected) + "}");
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  // SIGINT and SIGTERM stop it cleanly: blocked before any thread starts, awaited below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto source = source_of(args);
  // The first config: from the source, once; without one there is nothing to serve.
  const tollgate::ConfigSource::Fetched first = source->fetch();
  if (first.outcome != tollgate::ConfigSource::Outcome::kChanged) {
    std::fprintf(stderr, "front_door: %s: %s\n", source->describe().c_str(), first.error.c_str());
    return 2;
  }
  std::unique_ptr<tollgate::Limiter> limiter;
  try {
    limiter = std::make_unique<tollgate::Limiter>(tollgate::Config::from_json(first.text));
  } catch (const tollgate::ConfigError& e) {
    std::fprintf(stderr, "front_door: %s: %s\n", source->describe().c_str(), e.what());
    return 2;
  }
  tollgate::ConfigWatchOptions watch;
  watch.poll_interval = std::chrono::milliseconds(args.poll_ms);
  watch.log = [](tollgate::LogLevel level, std::string_view line) {
    std::fprintf(stderr, "front_door [%s] %.*s\n", tollgate::to_string(level).data(),
                 static_cast<int>(line.size()), line.data());
  };
  tollgate::ConfigWatcher watcher(*limiter, std::move(source), watch);

  web::http::experimental::listener::http_listener listener("http://" + args.host + ":" +
                                                            std::to_string(args.port));
  listener.support([&](const http_request& req) {
    try {
      const std::string path = req.request_uri().path();
      if (path == "/infer") return infer(*limiter, req);
      if (path == "/metrics")
        return reply(req, status_codes::OK, tollgate::prometheus_text(*limiter),
                     "text/plain; version=0.0.4");
      if (path == "/healthz") return healthz(*limiter, req);
      reply(req, status_codes::NotFound, R"({"error": "not found"})");
    } catch (const std::exception& e) {
      reply(req, status_codes::InternalError, R"({"error": "internal"})");
      std::fprintf(stderr, "front_door: %s\n", e.what());
    }
  });
  listener.open().wait();
  std::printf("front_door listening on http://%s:%d\n", args.host.c_str(), args.port);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  listener.close().wait();
  return 0;
}
