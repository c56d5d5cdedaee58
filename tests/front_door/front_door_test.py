#!/usr/bin/env python3
"""The C++ front door end to end: a real redis-server on a free loopback port, two
front_door instances sharing it, real HTTP requests. Checks what they admit together
against the bound, the 429s and their headers, that /metrics parses as Prometheus text and
that a real Prometheus server (Debian's, installed by scripts/deps) scraping both sees the
decisions by policy with no tenant id in any label, and that a policy changed at its source
(the file both watch) is applied by both.

usage: front_door_test.py FRONT_DOOR REDIS_SERVER"""
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

FRONT_DOOR, REDIS_SERVER = sys.argv[1], sys.argv[2]
REASONS = {"over_limit", "cold_key", "lease_pending", "over_group_limit", "penalty_box",
           "fallback_local", "fallback_deny", "timeout", "queue_full"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, tenant=None, cost=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if tenant:
        req.add_header("X-Tenant", tenant)
    if cost:
        req.add_header("X-Cost", str(cost))
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def policy(rate, burst, name="tenants", match="tenant:*"):
    return {"store": {"type": "redis", "shards": [f"redis://127.0.0.1:{redis_port}"]},
            "leases": {"ttl_ms": 1000},
            "policies": [{"name": name, "match": match, "type": "token_bucket",
                          "rate": rate, "burst": burst}]}


def write_policy(cfg):  # replaced atomically, as config management does
    with open(config + ".new", "w") as f:
        json.dump(cfg, f)
    os.rename(config + ".new", config)


def drive(tenant, seconds, cost=1):
    """Requests alternating between both instances; (admitted tokens, 429 replies)."""
    admitted, rejected = 0, []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        status, headers, body = get(ports[i % 2], "/infer", tenant, cost)
        i += 1
        if status == 200:
            admitted += cost
        elif status == 429:
            rejected.append((headers, body))
        else:
            check(False, f"/infer answered {status}: {body}")
    return admitted, rejected


PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?'
                       r' (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$')


def check_prometheus(text):
    samples = 0
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            check(len(line.split(" ", 3)) >= 3, f"bad comment line: {line!r}")
            continue
        check(PROM_LINE.match(line) is not None, f"/metrics: not Prometheus text: {line!r}")
        samples += 1
    check(samples > 0, "/metrics has no samples")
    check("tollgate_decisions_total" in text, "/metrics lacks tollgate_decisions_total")


def prometheus_scrapes(ports, deadline_s=90):
    """A real Prometheus server on a free loopback port scrapes both instances every second;
    its HTTP API is asked (bounded deadline, no fixed sleep) until the series arrive."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        check(False, "prometheus not installed (scripts/deps installs Debian's)")
        return
    prom_port = free_port()
    targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                "  - job_name: front-door\n    static_configs:\n"
                f"      - targets: [{targets}]\n")
    with open(os.path.join(work, "prometheus.log"), "w") as log:
        procs.append(subprocess.Popen([prometheus, f"--config.file={cfg}",
                                       f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"],
                                      stdout=log, stderr=log))
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def ask(path, **params):
        url = api + path + "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)["data"]
        except (OSError, ValueError, KeyError):
            return None  # not up yet

    wanted = ['count(up{job="front-door"} == 1) == 2',
              'tollgate_decisions_total{job="front-door",tollgate_policy="tenants",'
              'tollgate_result="admitted",tollgate_reason="ok"} > 0',
              'tollgate_decisions_total{tollgate_policy="tenants",tollgate_result="denied"} > 0',
              'tollgate_decisions_total{tollgate_policy="other"} == 0']
    deadline = time.monotonic() + deadline_s
    for expr in wanted:
        while not (ask("/query", query=expr) or {}).get("result"):
            if time.monotonic() > deadline:
                check(False, f"prometheus: no series for {expr} after {deadline_s} s")
                return
            time.sleep(0.2)
        print(f"prometheus: seen {expr}", flush=True)
    series = ask("/series", **{"match[]": '{__name__=~"tollgate_.*"}'}) or []
    check(len({s["__name__"] for s in series}) >= 15, f"prometheus: {len(series)} tollgate series")
    for s_ in series:
        for k, v in s_.items():
            check("acme" not in v, f"prometheus: the tenant id in label {k}={v!r}")


work = tempfile.mkdtemp(prefix="tollgate-front-door-")
config = os.path.join(work, "policies.json")
redis_port = free_port()
procs = []
try:
    procs.append(subprocess.Popen([REDIS_SERVER, "--port", str(redis_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", work],
                                  stdout=subprocess.DEVNULL))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", redis_port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    RATE, BURST = 5.0, 20
    write_policy(policy(RATE, BURST))
    ports = [free_port(), free_port()]
    for p in ports:
        procs.append(subprocess.Popen([FRONT_DOOR, "--port", str(p), "--config", config,
                                       "--poll-ms", "200"]))
    for p in ports:
        for _ in range(200):
            try:
                if get(p, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        status, _, body = get(p, "/healthz")
        check(status == 200 and json.loads(body)["shards"] == ["closed"], f"/healthz: {status} {body}")

    # 1. Both instances together admit no more than the bound: rate * (T + lease TTL) + burst.
    T = 3.0
    t0 = time.monotonic()
    admitted, rejected = drive("acme", T)
    elapsed = time.monotonic() - t0
    bound = RATE * (elapsed + 1.0) + BURST
    print(f"phase 1: admitted {admitted} of bound {bound:.1f} in {elapsed:.1f} s, "
          f"{len(rejected)} x 429", flush=True)
    check(admitted <= bound, f"admitted {admitted} > bound {bound:.1f}")
    check(admitted >= BURST / 2, f"admitted only {admitted}: the limiter starves")
    check(len(rejected) > 0, "no 429 although far more was offered than allowed")
    for headers, body in rejected:
        retry = headers.get("Retry-After", "")
        check(retry.isdigit() and int(retry) >= 1, f"429 without a Retry-After in seconds: {headers}")
        reason = headers.get("X-RateLimit-Reason", "")
        check(reason in REASONS, f"429 with reason {reason!r}")
        check(json.loads(body)["reason"] == reason, f"429 body {body!r}")
    status, _, _ = get(ports[0], "/infer")
    check(status == 400, f"no X-Tenant: {status}, not 400")

    # 2. /metrics is Prometheus text.
    for p in ports:
        status, headers, text = get(p, "/metrics")
        check(status == 200 and headers.get("Content-Type", "").startswith("text/plain"),
              f"/metrics: {status} {headers.get('Content-Type')}")
        check_prometheus(text)
    prometheus_scrapes(ports)

    # 3. The policy changes at its source: acme gets a bucket of its own, of 4 tokens.
    SMALL = 4
    cfg = policy(RATE, BURST)
    cfg["policies"].append({"name": "acme-small", "match": "tenant:acme", "type": "token_bucket",
                            "rate": 0.001, "burst": SMALL})
    t_change = time.monotonic()
    write_policy(cfg)
    for p in ports:
        for _ in range(300):
            if json.loads(get(p, "/healthz")[2])["config_updates"] >= 1:
                break
            time.sleep(0.02)
        check(json.loads(get(p, "/healthz")[2])["config_updates"] == 1, f"instance {p}: no update")
    print(f"policy change in force on both instances after {time.monotonic() - t_change:.2f} s "
          f"(poll 0.2 s)", flush=True)
    time.sleep(0.1)  # a tick for the keys to move
    admitted2, rejected2 = drive("acme", 2.0)
    print(f"phase 2: admitted {admitted2} under the new limit of {SMALL}", flush=True)
    check(admitted2 <= SMALL, f"admitted {admitted2} > the new burst {SMALL}: the change did not hold")
    check(len(rejected2) > 0, "no 429 under the new limit")
    other, _ = drive("globex", 0.5)
    check(other > 0, "another tenant under the unchanged policy was starved")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    subprocess.run(["rm", "-rf", work])

print("front_door test:", "FAILED" if failures else "passed", flush=True)
sys.exit(1 if failures else 0)
