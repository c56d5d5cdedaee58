#!/usr/bin/env bash
# The per-request design, for comparison (docs/performance.md): one EVALSHA of Tollgate's
# own lease script per admission — what Envoy's ratelimit service, rate-limiter-flexible
# and RedisRateLimiting do — measured with redis-benchmark against a local redis-server
# that this script starts on a free loopback port and stops again.
#
#   bench/per_request_baseline.sh [requests=200000] [clients=50]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
clients=${2:-50}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --logfile "$dir/redis.log" --daemonize no &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.05; done
# The lease script, as the SDK loads it.
script=$(cat sdk/src/store/redis/lua/lease.lua)
sha=$(redis-cli -p "$port" SCRIPT LOAD "$script")
# One token per call from a bucket that never runs dry; a fresh request id per call.
echo "throughput, $clients clients:"
redis-benchmark -p "$port" -n "$requests" -c "$clients" -r 100000000 -q \
  EVALSHA "$sha" 2 'tg:{g}:b:p:tenant' 'tg:{g}:r:__rand_int__' 0 1 1 2000000 1e9 1e9 0 0 h |
  tr '\r' '\n' | tail -1 | sed 's/.*: \([0-9.]* requests per second.*\)/  \1/'
# Latency of single calls, one client (the round trip every request would pay).
echo "latency, 1 client (rps, avg, min, p50, p95, p99, max in ms):"
redis-benchmark -p "$port" -n 20000 -c 1 -r 100000000 --csv \
  EVALSHA "$sha" 2 'tg:{g}:b:p:tenant' 'tg:{g}:r:__rand_int__' 0 1 1 2000000 1e9 1e9 0 0 h |
  tail -1 | cut -d, -f2- | sed 's/^/  /'
