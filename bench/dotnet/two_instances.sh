#!/usr/bin/env bash
# Two ASP.NET Core instances sharing one quota (issue 15, "Fair between instances by
# default"): one redis-server on a free loopback port, two samples/aspnetcore apps on it with
# the Redis store at the SDK's defaults and the sample's "tenants" policy set to a plain token
# bucket of RATE/s and burst BURST (no group, no other setting), and wrk with CONNECTIONS
# connections against each app at the same time, every request "X-Tenant: bench" (one key,
# one bucket). After a WARMUP (default 2 s) of the same load, each round runs DURATION s and
# counts what each instance admitted (wrk's requests minus its non-2xx answers). Prints each
# round (admitted per instance, their split, the larger instance's deviation from an even
# part, and the total against rate x DURATION), then a JSON line. Exit 0 whatever it measured
# (a measurement, not a test; tests/redis/fairness_test.cpp is the test of the same property).
# Stops what it started, also on failure. The sample references the binding as a project.
#   bench/dotnet/two_instances.sh [ROUNDS=3] [DURATION=10] [CONNECTIONS=16] [RATE=100] [BURST=100]
# TOLLGATE_NATIVE_LIBRARY: libtollgate.so (default build-dotnet/sdk/libtollgate.so).
# FAIR=false runs the policy with fair_instances off (first come, first served between
# instances), the comparison that shows what the default does.
set -euo pipefail
ROUNDS=${1:-3} DURATION=${2:-10} CONNECTIONS=${3:-16} RATE=${4:-100} BURST=${5:-100}
WARMUP=${WARMUP:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=two_instances.sh
# shellcheck source=bench/dotnet/sample_env.sh
. "$HERE/sample_env.sh"  # LIB, APP, free_port, start_redis

WORK=$(mktemp -d /tmp/tollgate-two.XXXXXX)
REDIS_PID= APP_PIDS=() WRK_PIDS=()
cleanup() {
  for pid in "${WRK_PIDS[@]}" "${APP_PIDS[@]}" $REDIS_PID; do kill "$pid" 2>/dev/null || true; done
  for pid in "${WRK_PIDS[@]}" "${APP_PIDS[@]}" $REDIS_PID; do wait "$pid" 2>/dev/null || true; done
  [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "two_instances.sh: FAIL: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done; exit 1; }

start_redis "$WORK"

PORTS=()
for i in 1 2; do
  port=$(free_port)
  (cd "$ROOT/samples/aspnetcore" && exec "$APP" --Urls="http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning \
    --Tollgate:InstanceId="instance-$i" \
    --Tollgate:Store:Type=redis --Tollgate:Store:Shards:0="redis://127.0.0.1:$REDIS_PORT" \
    --Tollgate:Policies:0:Rate="$RATE" --Tollgate:Policies:0:Burst="$BURST" \
    ${FAIR:+--Tollgate:Policies:0:FairInstances="$FAIR"}) >"$WORK/app$i.log" 2>&1 &
  APP_PIDS+=($!)
  PORTS+=("$port")
done
for port in "${PORTS[@]}"; do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  [[ $(curl -s "http://127.0.0.1:$port/healthz") == Healthy ]] || fail "an app is not healthy"
done

both() {  # SECONDS OUT-PREFIX: wrk against both apps at once
  WRK_PIDS=()
  for i in 1 2; do
    wrk -t2 -c"$CONNECTIONS" -d"$1s" -H 'X-Tenant: bench' "http://127.0.0.1:${PORTS[$((i - 1))]}/" >"$2.$i" 2>&1 &
    WRK_PIDS+=($!)
  done
  for pid in "${WRK_PIDS[@]}"; do wait "$pid" || fail "wrk failed"; done
  WRK_PIDS=()
}
[[ $WARMUP != 0 ]] && both "$WARMUP" "$WORK/warmup"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do both "$DURATION" "$WORK/round$r"; done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$WORK" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$RATE" "$BURST" "$load_start" "$load_end" "${FAIR:-default}" <<'PY'
import json, re, statistics, sys
work, rounds, duration, connections, rate, burst = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
load_start, load_end, fair = sys.argv[7], sys.argv[8], sys.argv[9]

def admitted(path):
    out = open(path).read()
    m = re.search(r"(\d+) requests in", out)
    if not m: sys.exit(f"two_instances.sh: no request count in {path}:\n{out}")
    n = int(m.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return n, n - (int(bad.group(1)) if bad else 0)

print(f"two instances, one plain token bucket of {rate:g}/s, burst {burst:g}, the SDK's defaults "
      f"(fair_instances: {fair}); "
      f"wrk -c{connections} against each, {duration:g} s a round (load {load_start} -> {load_end})")
print("| round | requests (1 / 2) | admitted (1 / 2) | split | larger deviation from an even part | total admitted / rate x duration |")
print("|---|---|---|---|---|---|")
rows = []
for r in range(1, rounds + 1):
    (n1, a1), (n2, a2) = admitted(f"{work}/round{r}.1"), admitted(f"{work}/round{r}.2")
    total = a1 + a2
    even = total / 2
    dev = max(abs(a1 - even), abs(a2 - even)) / even if even else 0.0
    rows.append({"round": r, "requests": [n1, n2], "admitted": [a1, a2], "deviation": dev,
                 "admitted_over_rate": total / (rate * duration)})
    print(f"| {r} | {n1:,} / {n2:,} | {a1:,} / {a2:,} | {100 * a1 / total:.1f} / {100 * a2 / total:.1f} % | "
          f"{100 * dev:.1f} % | {total:,} / {rate * duration:,.0f} ({total / (rate * duration):.3f}) |")
worst = max(x["deviation"] for x in rows)
print(f"worst deviation {100 * worst:.1f} % (target: within 10 %)")
print(json.dumps({"rounds": rows, "worst_deviation": worst,
                  "median_deviation": statistics.median(x["deviation"] for x in rows),
                  "rate": rate, "burst": burst, "fair_instances": fair, "duration_s": duration, "connections": connections,
                  "load_average_start": load_start, "load_average_end": load_end}))
PY
