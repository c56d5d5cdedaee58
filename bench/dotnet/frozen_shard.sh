#!/usr/bin/env bash
# A frozen Redis under the ASP.NET Core sample (issue 15, "No wait for a lease that will not
# come"): one redis-server on a free loopback port, samples/aspnetcore on it with the Redis
# store at the SDK's defaults and a quota far above the load (rate and burst 1e9), wrk with
# CONNECTIONS connections for DURATION s, and the redis-server frozen (SIGSTOP) for FREEZE s
# from FREEZE_AT s into the run, then SIGCONT. frozen_shard.lua gives every connection a wrk
# thread of its own and writes each response's start, status and latency, so the run is split
# by when a request started: before the freeze, frozen, after. Prints a table (requests,
# non-2xx, p50/p99/max latency, waits > 50 ms), the app's fallback and overdue counters from
# /metrics, and, last, a JSON line. Exit 0 whatever it measured (a measurement, not a test;
# not in ./scripts/test). Stops what it started, also on failure, and never leaves the
# redis-server stopped. The sample references the binding as a project (not the packed NuGet).
#   bench/dotnet/frozen_shard.sh [DURATION=10] [FREEZE_AT=3.5] [FREEZE=3] [CONNECTIONS=32] [TENANTS=1]
# TENANTS=1: every connection sends "X-Tenant: bench" (as bench/dotnet/wrk.sh); else one tenant
# a connection. WARMUP (default 2 s) runs wrk before the measured run, as wrk.sh does.
# TOLLGATE_NATIVE_LIBRARY: libtollgate.so (default build-dotnet/sdk/libtollgate.so).
set -euo pipefail
DURATION=${1:-10} FREEZE_AT=${2:-3.5} FREEZE=${3:-3} CONNECTIONS=${4:-32} TENANTS=${5:-1}
WARMUP=${WARMUP:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=frozen_shard.sh
# shellcheck source=bench/dotnet/sample_env.sh
. "$HERE/sample_env.sh"  # LIB, APP, free_port, start_redis

WORK=$(mktemp -d /tmp/tollgate-frozen.XXXXXX)
REDIS_PID= APP_PID= WRK_PID=
cleanup() {
  [[ -n $REDIS_PID ]] && kill -CONT "$REDIS_PID" 2>/dev/null  # never left stopped
  for pid in $WRK_PID $APP_PID $REDIS_PID; do kill "$pid" 2>/dev/null || true; done
  for pid in $WRK_PID $APP_PID $REDIS_PID; do wait "$pid" 2>/dev/null || true; done
  [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "frozen_shard.sh: FAIL: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done; exit 1; }

start_redis "$WORK"

PORT=$(free_port)
(cd "$ROOT/samples/aspnetcore" && exec "$APP" --Urls="http://127.0.0.1:$PORT" --Logging:LogLevel:Default=Warning \
  --Tollgate:Store:Type=redis --Tollgate:Store:Shards:0="redis://127.0.0.1:$REDIS_PORT" \
  --Tollgate:Policies:0:Rate=1e9 --Tollgate:Policies:0:Burst=1e9) >"$WORK/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
[[ $(curl -s "http://127.0.0.1:$PORT/healthz") == Healthy ]] || fail "the sample is not healthy"

URL=http://127.0.0.1:$PORT/
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $WARMUP != 0 ]]; then
  wrk -t"$CONNECTIONS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$HERE/frozen_shard.lua" "$URL" -- "$WORK/warmup" "$TENANTS" >/dev/null
fi
wrk -t"$CONNECTIONS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$HERE/frozen_shard.lua" "$URL" -- "$WORK/run" "$TENANTS" \
  >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
mono() { python3 -c 'import time; print(int(time.monotonic() * 1e6))'; }
sleep "$FREEZE_AT"
kill -STOP "$REDIS_PID"
stop_us=$(mono)
sleep "$FREEZE"
cont_us=$(mono)  # read before SIGCONT: a request started after this one may see the shard answer
kill -CONT "$REDIS_PID"
wait "$WRK_PID" || fail "wrk failed: $(cat "$WORK/wrk.out")"
WRK_PID=
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
curl -s "http://127.0.0.1:$PORT/metrics" >"$WORK/metrics.txt" || true

python3 - "$WORK" "$stop_us" "$cont_us" "$load_start" "$load_end" "$DURATION" "$FREEZE_AT" "$FREEZE" "$CONNECTIONS" "$TENANTS" <<'PY'
import glob, json, re, sys
work, stop, cont = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load_start, load_end, duration, freeze_at, freeze, connections, tenants = sys.argv[4:]
rows = []  # (start_us, status, latency_us)
for f in glob.glob(work + "/run.*"):
    with open(f) as fh:
        rows += [tuple(map(int, line.split())) for line in fh if line.strip()]
wrk_out = open(work + "/wrk.out").read()
m = re.search(r"(\d+) requests in", wrk_out)
wrk_requests = int(m.group(1)) if m else None

def pct(values, p):
    if not values: return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]

def window(name, sel):
    lat = [r[2] / 1000 for r in sel]
    return {"window": name, "requests": len(sel), "non_2xx": sum(1 for r in sel if not 200 <= r[1] < 300),
            "status_429": sum(1 for r in sel if r[1] == 429),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else None,
            "waits_over_50ms": sum(1 for x in lat if x > 50)}

first = min(r[0] for r in rows)
windows = [
    window("before the freeze", [r for r in rows if r[0] < stop]),
    window("frozen", [r for r in rows if stop <= r[0] < cont]),
    window("after", [r for r in rows if r[0] >= cont]),
    window("whole run", rows),
]
# In flight when the freeze began: started before it, answered after.
straddling = [r for r in rows if r[0] < stop <= r[0] + r[2]]
print(f"freeze from {(stop - first) / 1e6:.2f} s to {(cont - first) / 1e6:.2f} s of the run (first request at 0)")
print("| window | requests | non-2xx (429) | p50 | p99 | max | waits > 50 ms |")
print("|---|---|---|---|---|---|---|")
for w in windows:
    f = lambda x: "-" if x is None else f"{x:.1f} ms"
    print(f"| {w['window']} | {w['requests']:,} | {w['non_2xx']} ({w['status_429']}) | {f(w['p50_ms'])} | "
          f"{f(w['p99_ms'])} | {f(w['max_ms'])} | {w['waits_over_50ms']} |")
slow = sorted((r for r in rows if r[2] > 50_000), key=lambda r: r[0])
print(f"in flight when the freeze began: {len(straddling)}, their max {max((r[2] for r in straddling), default=0) / 1000:.1f} ms")
groups = {}  # the slow ones by status and start (to 100 ms), relative to the freeze
for r in slow:
    groups.setdefault((r[1], round((r[0] - stop) / 1e5) / 10), []).append(r[2] / 1000)
for (status, at), lat in sorted(groups.items(), key=lambda g: g[0][1]):
    print(f"  slow: {len(lat)} started {at:+.1f} s from the freeze, {min(lat):.0f}-{max(lat):.0f} ms, status {status}")
counters = {}
for line in open(work + "/metrics.txt"):
    if line.startswith("#") or "_bucket" in line: continue  # histograms: count and sum only
    if re.search(r"overdue|fallback|breaker|decisions|lease|store", line):
        name, _, value = line.strip().rpartition(" ")
        if float(value) != 0: counters[name.replace("tollgate_", "")] = float(value)
for k, v in sorted(counters.items()):
    print(f"  {k} {v:g}")
wrk_lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", wrk_out)
print("wrk's own summary:", " ".join(wrk_out.split("Latency Distribution")[0].split()[-12:]) if wrk_lat else "?")
print(f"lines written {len(rows)}, wrk counted {wrk_requests}; load average (1, 5, 15 min) {load_start} at the start, {load_end} at the end")
print(json.dumps({"windows": windows, "in_flight_at_freeze": len(straddling), "counters": counters,
                  "wrk_requests": wrk_requests, "duration_s": float(duration), "freeze_at_s": float(freeze_at),
                  "freeze_s": float(freeze), "connections": int(connections), "tenants": int(tenants),
                  "load_average_start": load_start, "load_average_end": load_end}))
PY
