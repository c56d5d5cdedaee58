#!/usr/bin/env bash
# wrk against samples/aspnetcore with and without the rate limiter (UseRateLimiter with the
# Tollgate policy vs. no middleware, and the same middleware with the BCL's token bucket), alternating, ROUNDS rounds of DURATION each; the quota
# is set so large that every request is admitted, so both serve the same work. Prints each
# round, the medians and the median of the rounds' differences (each round runs both back to
# back), and, last, a JSON line. Stops the app it started, also on failure.
#   bench/dotnet/wrk.sh [ROUNDS=3] [DURATION=8s] [CONNECTIONS=32]
set -euo pipefail
ROUNDS=${1:-3} DURATION=${2:-8s} CONNECTIONS=${3:-32}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/bindings/dotnet/deps"
[[ -f $ROOT/build-dotnet/sdk/libtollgate.so ]] || { echo "wrk.sh: build libtollgate.so first (bindings/dotnet/test.sh)"; exit 1; }
dotnet build "$ROOT/samples/aspnetcore" -c Release -v:q -nologo >/dev/null
APP=$ROOT/samples/aspnetcore/bin/Release/net10.0/Tollgate.Sample
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {  # tollgate|off|bcl -> requests/s
  local port out
  port=$(free_port)
  (cd "$ROOT/samples/aspnetcore" && exec "$APP" --Urls="http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning \
    --Sample:RateLimiting="$1" \
    --Tollgate:Policies:0:Rate=1e9 --Tollgate:Policies:0:Burst=1e9) >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  wrk -t1 -c"$CONNECTIONS" -d2s -H 'X-Tenant: bench' "http://127.0.0.1:$port/" >/dev/null  # warm-up
  out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H 'X-Tenant: bench' "http://127.0.0.1:$port/")
  if grep -q 'Non-2xx' <<<"$out"; then echo "wrk.sh: non-2xx answers with the limiter $1:" >&2; echo "$out" >&2; exit 1; fi
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}

# The machine is shared: compare within a round (back to back), then take the median.
# "bcl" is the same middleware and partitions with the BCL's in-process token bucket, which
# separates the middleware's own cost from Tollgate's.
off=() on=() bcl=() ratios=() bcl_ratios=() vs_bcl=()
pct() { python3 -c "print(100 * ($2 - $1) / $1)"; }
for r in $(seq "$ROUNDS"); do
  a=$(run off); b=$(run tollgate); c=$(run bcl)
  off+=("$a"); on+=("$b"); bcl+=("$c"); ratios+=("$(pct "$a" "$b")"); bcl_ratios+=("$(pct "$a" "$c")")
  vs_bcl+=("$(pct "$c" "$b")")  # the partitioned Tollgate policy against the BCL's, same round
  printf 'round %s: without limiter %s req/s, Tollgate %s (%+.1f %%), BCL token bucket %s (%+.1f %%); Tollgate vs BCL %+.1f %%\n' \
    "$r" "$a" "$b" "${ratios[-1]}" "$c" "${bcl_ratios[-1]}" "${vs_bcl[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m_off=$(median "${off[@]}") m_on=$(median "${on[@]}") m_bcl=$(median "${bcl[@]}")
diff=$(printf '%.1f' "$(median "${ratios[@]}")") bcl_diff=$(printf '%.1f' "$(median "${bcl_ratios[@]}")")
vs=$(printf '%.1f' "$(median "${vs_bcl[@]}")")
vs_min=$(printf '%.1f' "$(printf '%s\n' "${vs_bcl[@]}" | sort -g | head -1)")
vs_max=$(printf '%.1f' "$(printf '%s\n' "${vs_bcl[@]}" | sort -g | tail -1)")
load=$(cut -d' ' -f1 /proc/loadavg)
echo "median: without $m_off req/s, Tollgate $m_on ($diff % within a round), BCL $m_bcl ($bcl_diff %); load average $load"
echo "Tollgate vs BCL within a round: median $vs %, from $vs_min % to $vs_max %"
echo "{\"wrk_without_rps\": $m_off, \"wrk_tollgate_rps\": $m_on, \"tollgate_median_round_difference_percent\": $diff, \"wrk_bcl_rps\": $m_bcl, \"bcl_median_round_difference_percent\": $bcl_diff, \"tollgate_vs_bcl_median_round_difference_percent\": $vs, \"tollgate_vs_bcl_min_percent\": $vs_min, \"tollgate_vs_bcl_max_percent\": $vs_max, \"rounds\": $ROUNDS, \"duration\": \"$DURATION\", \"connections\": $CONNECTIONS, \"load_average_1m\": $load}"
