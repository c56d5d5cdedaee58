#!/usr/bin/env bash
# A real Prometheus server scrapes the ASP.NET Core sample (samples/aspnetcore, /metrics): one
# redis-server, the sample on Kestrel and Debian's prometheus, each on a free loopback port,
# prometheus with a generated config scraping every second. Requests of one tenant go through
# the sample; then the test asks prometheus's HTTP API (/api/v1/query, /api/v1/series) until
# the tollgate series arrive with the vocabulary's labels, with a bounded deadline (no fixed
# sleep). Checks: decisions by result and reason (admitted and denied both counted) and the
# named policy's admissions under tollgate_policy, the
# breaker state of shard 0, the lease duration histogram, no tenant id in any label, and the
# Grafana dashboard's and the docs' queries run on it (the decision panels with data).
# Everything started here is stopped on exit, also on failure.
#   bindings/dotnet/prometheus/run.sh   (after bindings/dotnet/test.sh has built the native library)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
LIB=${TOLLGATE_NATIVE_LIBRARY:-$ROOT/build-dotnet/sdk/libtollgate.so}
DEADLINE_S=${TOLLGATE_PROMETHEUS_DEADLINE_S:-90}
HARNESS_NAME=prometheus
# shellcheck source=../harness.sh
source "$HERE/../harness.sh"
command -v prometheus >/dev/null || fail "prometheus not installed (scripts/deps installs Debian's)"
[[ -f $LIB ]] || fail "$LIB not built"

dotnet build "$ROOT/samples/aspnetcore" -c Release -p:TollgateNativeLibrary="$LIB" -v:q -nologo \
  >"$WORK/build.log" 2>&1 || fail "the sample did not build"
APP_DIR=$ROOT/samples/aspnetcore/bin/Release/net10.0

start_redis

APP_PORT=$(free_port)
(cd "$APP_DIR" && exec dotnet Tollgate.Sample.dll --urls "http://127.0.0.1:$APP_PORT" \
  --Logging:LogLevel:Default=Warning \
  --Tollgate:Store:Type=redis --Tollgate:Store:Shards:0="redis://127.0.0.1:$REDIS_PORT" \
  --Tollgate:Policies:0:Name=tenants --Tollgate:Policies:0:Match='tenant:*' \
  --Tollgate:Policies:0:Type=token_bucket \
  --Tollgate:Policies:0:Rate=1 --Tollgate:Policies:0:Burst=5) >"$WORK/app.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$APP_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
[[ $(curl -s "http://127.0.0.1:$APP_PORT/healthz") == Healthy ]] || fail "the sample is not healthy"
curl -sf "http://127.0.0.1:$APP_PORT/metrics" -o "$WORK/metrics.prom" || fail "no /metrics"
promtool check metrics <"$WORK/metrics.prom" >"$WORK/promtool.log" 2>&1 || fail "promtool refuses /metrics"

# One tenant beyond its quota: some requests admitted, some denied (429).
TENANT="acme-$RANDOM$RANDOM"
codes=""
for _ in $(seq 40); do
  codes+=$(curl -s -o /dev/null -w '%{http_code} ' -H "X-Tenant: $TENANT" "http://127.0.0.1:$APP_PORT/")
done
grep -q 200 <<<"$codes" || fail "no request admitted: $codes"
grep -q 429 <<<"$codes" || fail "no request denied: $codes"

PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: tollgate-sample
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$APP_PORT"]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)

API="http://127.0.0.1:$PROM_PORT/api/v1"
# query EXPR: the JSON answer of an instant query ('' while prometheus is not up yet).
query() { curl -sfG "$API/query" --data-urlencode "query=$1" 2>/dev/null || true; }
# count EXPR: how many series an instant query returns (0 until they are scraped).
count() { query "$1" | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)["data"]["result"]))
except Exception: print(0)'; }

wanted=(
  'tollgate_decisions_total{job="tollgate-sample",tollgate_result="admitted",tollgate_reason="ok"} > 0'
  'tollgate_decisions_total{tollgate_result="denied",tollgate_reason=~"over_limit|lease_pending|cold_key"} > 0'
  'tollgate_decisions_total{tollgate_policy="tenants",tollgate_result="admitted"} > 0'
  'tollgate_tokens_admitted_total{tollgate_policy="tenants"} > 0'
  'tollgate_breaker_state{tollgate_shard="0",tollgate_breaker_state="closed"} == 1'
  'tollgate_lease_duration_seconds_count{tollgate_outcome="ok"} > 0'
  'tollgate_lease_duration_seconds_bucket{tollgate_outcome="ok",le="+Inf"} > 0'
  'tollgate_lease_requests_total > 0'
)
start=$(date +%s)
for expr in "${wanted[@]}"; do
  until [[ $(count "$expr") -ge 1 ]]; do
    (($(date +%s) - start < DEADLINE_S)) || fail "no series for: $expr (after ${DEADLINE_S}s)"
    sleep 0.2
  done
  echo "prometheus: seen $expr"
done

# Every label of every tollgate series, none with the tenant id.
curl -sfG "$API/series" --data-urlencode 'match[]={__name__=~"tollgate_.*"}' -o "$WORK/series.json" ||
  fail "no /api/v1/series"
python3 - "$WORK/series.json" "$TENANT" <<'PY' || fail "series check"
import json, sys
series = json.load(open(sys.argv[1]))["data"]
tenant = sys.argv[2]
names = {s["__name__"] for s in series}
assert len(names) >= 15, names
for s in series:
    for k, v in s.items():
        assert tenant not in v and "acme" not in v, (k, v)
print(f"prometheus: {len(series)} tollgate series in {len(names)} families, no tenant id in any label")
PY
# The dashboard's queries and the PromQL of docs/observability.md run on this server (Grafana's
# variables given values): each parses, and the decision panels show the traffic of a second
# tenant sent while prometheus scrapes (rates need two scrapes after it).
for _ in $(seq 40); do
  curl -s -o /dev/null -H "X-Tenant: $TENANT-2" "http://127.0.0.1:$APP_PORT/"
done
python3 - "$API" "$ROOT/docs/grafana-dashboard.json" "$ROOT/docs/observability.md" "$DEADLINE_S" <<'PY' || fail "queries"
import json, sys, time, urllib.parse, urllib.request
api, dashboard, doc, deadline_s = sys.argv[1:]
deadline = time.monotonic() + float(deadline_s)
def run(expr):
    url = api + "/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        return json.load(e)
def grafana(e):
    return e.replace("$__rate_interval", "1m").replace('=~"$job"', '=~".+"')
exprs = [t["expr"] for p in json.load(open(dashboard))["panels"] for t in p["targets"]]
# The decision panels (a state such as an open breaker may not have happened here).
def series(e):
    r = run(grafana(e))
    assert r["status"] == "success", (e, r)
    return r["data"]["result"]
for e in (e for e in exprs if "tollgate_decisions_total" in e):
    while not series(e):
        assert time.monotonic() < deadline, f"no series for the dashboard's {e}"
        time.sleep(0.2)
empty = [e for e in exprs if not series(e)]
lines, inside, docs = [], False, []
for line in open(doc):
    if line.startswith("```"):
        inside = line.strip() == "```promql"
        continue
    if inside:
        if line.startswith("  ") and docs:
            docs[-1] += " " + line.strip()
        elif line.strip() and not line.startswith("#"):
            docs.append(line.strip())
for e in docs:
    r = run(e)
    assert r["status"] == "success", (e, r)
print(f"prometheus: {len(exprs)} dashboard queries and {len(docs)} from the docs run;"
      f" {len(exprs) - len(empty)} dashboard queries have series now")
PY
echo "prometheus: passed"
