#!/usr/bin/env bash
# End to end: a fresh ASP.NET Core app (e2e/App, copied outside the repository) references
# Tollgate.AspNetCore from the packed .nupkg in a local folder feed; one redis-server and two
# instances of the app on Kestrel, on free loopback ports, share one tenant's quota.
# Checks: requests beyond the quota get 429 with Retry-After, the sum admitted by both stays
# within the documented bound rate*(T + lease TTL) + burst, both instances admit, the health
# check answers, and ActivityListener/MeterListener in the app saw the telemetry without the
# tenant id in any tag. Everything started here is stopped on exit, also on failure.
#   e2e/run.sh FEED_DIR
set -euo pipefail
FEED=$(cd "${1:?usage: run.sh FEED_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$HERE/../Directory.Build.props")
HARNESS_NAME=e2e
# shellcheck source=../harness.sh
source "$HERE/../harness.sh"

# The app, away from the repository (no Directory.Build.props, no solution), with a feed of
# its own and a package folder of its own, so only the freshly packed Tollgate can be used.
cp -r "$HERE/App" "$WORK/app"
cat >"$WORK/app/NuGet.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$FEED" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
  </packageSources>
</configuration>
XML
dotnet build "$WORK/app" -c Release -p:TollgateVersion="$VERSION" -p:RestorePackagesPath="$WORK/packages" \
  -v:q -nologo >"$WORK/build.log" 2>&1 || fail "the app did not build"
[[ -f $WORK/packages/tollgate.aspnetcore/$VERSION/tollgate.aspnetcore.$VERSION.nupkg ]] || fail "Tollgate.AspNetCore not restored from the feed"
APP_DIR=$WORK/app/bin/Release/net10.0
[[ -f $APP_DIR/runtimes/linux-x64/native/libtollgate.so ]] || fail "libtollgate.so not in the app's output"

start_redis

RATE=0.01 BURST=20 TTL_MS=2000
start_app() {  # name portvar  (not in a subshell: PIDS must see the new process)
  local port
  port=$(free_port)
  (cd "$APP_DIR" && exec dotnet E2eApp.dll --urls "http://127.0.0.1:$port" \
    --Logging:LogLevel:Default=Warning \
    --Tollgate:InstanceId="$1" \
    --Tollgate:Store:Type=redis --Tollgate:Store:Shards:0="redis://127.0.0.1:$REDIS_PORT" \
    --Tollgate:Leases:TtlMs=$TTL_MS \
    --Tollgate:Policies:0:Match='tenant:*' --Tollgate:Policies:0:Type=token_bucket \
    --Tollgate:Policies:0:Rate=$RATE --Tollgate:Policies:0:Burst=$BURST) >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  printf -v "$2" '%s' "$port"
}
start_app a PORT_A
start_app b PORT_B
for port in "$PORT_A" "$PORT_B"; do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  [[ $(curl -s "http://127.0.0.1:$port/healthz") == Healthy ]] || fail "instance on $port is not healthy"
done

# 120 requests for one tenant, alternating between the instances.
TENANT="acme-$RANDOM$RANDOM"
START=$(date +%s.%N)
ok_a=0 ok_b=0 rejected=0 without_retry_after=0 other=0
for i in $(seq 120); do
  port=$PORT_A; [[ $((i % 2)) -eq 0 ]] && port=$PORT_B
  headers=$(curl -s -D - -o /dev/null -H "X-Tenant: $TENANT" "http://127.0.0.1:$port/work")
  status=$(head -1 <<<"$headers" | awk '{print $2}')
  case $status in
    200) if [[ $port == "$PORT_A" ]]; then ok_a=$((ok_a + 1)); else ok_b=$((ok_b + 1)); fi ;;
    429) rejected=$((rejected + 1)); grep -qi '^retry-after: [1-9][0-9]*' <<<"$headers" || without_retry_after=$((without_retry_after + 1)) ;;
    *) other=$((other + 1)) ;;
  esac
done
END=$(date +%s.%N)
admitted=$((ok_a + ok_b))
bound=$(python3 -c "import math; print(math.floor($RATE * ($END - $START + $TTL_MS / 1000) + $BURST))")
echo "e2e: admitted $admitted (a $ok_a, b $ok_b), rejected $rejected, bound $bound, $(python3 -c "print(round($END - $START, 1))") s"
[[ $other -eq 0 ]] || fail "$other answers were neither 200 nor 429"
[[ $admitted -le $bound ]] || fail "admitted $admitted > bound $bound"
[[ $ok_a -ge 1 && $ok_b -ge 1 ]] || fail "an instance admitted nothing (a $ok_a, b $ok_b)"
[[ $rejected -ge 1 ]] || fail "nothing was rejected"
[[ $without_retry_after -eq 0 ]] || fail "$without_retry_after 429s without Retry-After"

for port in "$PORT_A" "$PORT_B"; do
  t=$(curl -s "http://127.0.0.1:$port/telemetry?tenant=$TENANT")
  python3 - "$t" <<'PY' || fail "telemetry on $port: $t"
import json, sys
t = json.loads(sys.argv[1])
assert t["leaseActivities"] >= 1, "no tollgate.lease activity"
assert t["leaseMeasurements"] >= 1, "no tollgate.leases measurement"
assert t["decisionMeasurements"] >= 1, "no tollgate.decisions measurement"
assert not t["tenantInTags"], "the tenant id appears in a tag"
PY
done
echo "e2e: passed (two instances, one quota, 429 + Retry-After, telemetry seen)"
