"""try_acquire from Python on a warm key (ns/op), and a per-request Lua token bucket with
redis-py against a local redis-server, in one run. The last line with --json is one JSON
object: tollgate_ns, redis_lua_ns and the details."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

import tollgate

# A token bucket per request, the way per-request limiters do it: one EVALSHA per decision.
LUA_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return allowed
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
    client.close()
    return proc, port


def bench_tollgate(port: int, iterations: int, repetitions: int) -> dict[str, float]:
    config = {"store": {"type": "redis", "shards": [f"redis://127.0.0.1:{port}"]},
              "policies": [{"match": "tenant:*", "type": "token_bucket",
                            "rate": 1e12, "burst": 1e12}]}
    with tollgate.Limiter(config) as limiter:
        key = "tenant:bench"
        assert limiter.acquire(key, 1, timeout=20).allowed  # warm: the key holds a lease
        for _ in range(iterations):  # and the local lease is sized for this rate
            limiter.try_acquire(key)
        runs = []
        denied = 0
        for _ in range(repetitions):
            t0 = time.perf_counter_ns()
            for _ in range(iterations):
                limiter.try_acquire(key)
            runs.append((time.perf_counter_ns() - t0) / iterations)
            if not limiter.try_acquire(key).allowed:
                denied += 1
        # The same through a Key resolved once (no encoding, hashing or lookup per call).
        handle = limiter.key(key)
        key_runs = []
        for _ in range(repetitions):
            t0 = time.perf_counter_ns()
            for _ in range(iterations):
                handle.try_acquire()
            key_runs.append((time.perf_counter_ns() - t0) / iterations)
        paths = bench_paths(limiter, key, max(1, iterations // 10), repetitions)
        # What the same loop costs around a call of a trivial builtin, for reference.
        empty = []
        noop = bool
        for _ in range(repetitions):
            t0 = time.perf_counter_ns()
            for _ in range(iterations):
                noop(key)
            empty.append((time.perf_counter_ns() - t0) / iterations)
        stats = limiter.stats()
    return {"ns": statistics.median(runs), "min_ns": min(runs), "max_ns": max(runs),
            "key_ns": statistics.median(key_runs), **paths,
            "loop_and_builtin_call_ns": statistics.median(empty),
            "denied_total": stats["denied_total"], "leases_asked": stats["leases_asked"]}


def bench_paths(limiter: tollgate.Limiter, key: str, n: int,
                repetitions: int) -> dict[str, float]:
    """ns per call of the other ways in: await acquire_async (decided at once on the warm
    key), a request through the WSGI and the ASGI middleware (try_acquire, then a trivial
    app), and the same trivial apps called bare, in the same run."""
    environ = {"HTTP_X_TENANT": "bench", "REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    scope = {"type": "http", "headers": [(b"x-tenant", b"bench")]}

    def wsgi_app(env, start_response):  # noqa: ANN001
        start_response("200 OK", [])
        return [b"ok"]

    async def asgi_app(scope, receive, send):  # noqa: ANN001
        await send({"type": "http.response.start", "status": 200})

    async def receive():  # noqa: ANN202
        return {"type": "http.request"}

    async def send(message):  # noqa: ANN001
        return None

    def start_response(status, headers, *exc):  # noqa: ANN001
        return None

    wsgi = tollgate.WSGIMiddleware(wsgi_app, limiter, key=lambda env: key)
    asgi = tollgate.ASGIMiddleware(asgi_app, limiter, key=lambda sc: key)

    def timed(loop_body) -> float:  # noqa: ANN001
        runs = []
        for _ in range(repetitions):
            t0 = time.perf_counter_ns()
            loop_body()
            runs.append((time.perf_counter_ns() - t0) / n)
        return statistics.median(runs)

    def wsgi_loop(app) -> None:  # noqa: ANN001
        for _ in range(n):
            app(environ, start_response)

    async def async_loop(call) -> None:  # noqa: ANN001
        for _ in range(n):
            await call()

    return {
        "acquire_async_ns": timed(lambda: asyncio.run(
            async_loop(lambda: limiter.acquire_async(key, 1, timeout=1.0)))),
        "wsgi_middleware_ns": timed(lambda: wsgi_loop(wsgi)),
        "wsgi_bare_app_ns": timed(lambda: wsgi_loop(wsgi_app)),
        "asgi_middleware_ns": timed(lambda: asyncio.run(
            async_loop(lambda: asgi(scope, receive, send)))),
        "asgi_bare_app_ns": timed(lambda: asyncio.run(
            async_loop(lambda: asgi_app(scope, receive, send)))),
    }


def bench_redis_lua(port: int, calls: int, repetitions: int) -> dict[str, float]:
    client = redis.Redis(host="127.0.0.1", port=port)
    script = client.register_script(LUA_TOKEN_BUCKET)
    key = "bench:lua"
    for _ in range(200):
        script(keys=[key], args=[1e12, 1e12, 1])
    runs = []
    samples: list[int] = []
    for _ in range(repetitions):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            s = time.perf_counter_ns()
            script(keys=[key], args=[1e12, 1e12, 1])
            samples.append(time.perf_counter_ns() - s)
        runs.append((time.perf_counter_ns() - t0) / calls)
    client.close()
    samples.sort()
    return {"ns": statistics.median(runs), "p50_ns": samples[len(samples) // 2],
            "p99_ns": samples[int(len(samples) * 0.99)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--iterations", type=int, default=1_000_000, help="try_acquire calls per run")
    ap.add_argument("--lua-calls", type=int, default=5_000, help="EVALSHA calls per run")
    ap.add_argument("--repetitions", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as workdir:
        proc, port = start_redis(workdir)
        try:
            tg = bench_tollgate(port, args.iterations, args.repetitions)
            lua = bench_redis_lua(port, args.lua_calls, max(1, args.repetitions // 2))
        finally:
            proc.terminate()
            proc.wait(10)

    print(f"tollgate try_acquire (warm key, from Python): {tg['ns']:.0f} ns/op "
          f"(median of {args.repetitions} x {args.iterations}; min {tg['min_ns']:.0f}, "
          f"max {tg['max_ns']:.0f}; the loop around a trivial builtin call: "
          f"{tg['loop_and_builtin_call_ns']:.0f} ns)")
    print(f"tollgate Key.try_acquire (the key resolved once): {tg['key_ns']:.0f} ns/op")
    print(f"await acquire_async (decided at once): {tg['acquire_async_ns']:.0f} ns/op; "
          f"WSGI middleware {tg['wsgi_middleware_ns']:.0f} ns/request "
          f"(bare app {tg['wsgi_bare_app_ns']:.0f}); ASGI middleware "
          f"{tg['asgi_middleware_ns']:.0f} ns/request (bare app {tg['asgi_bare_app_ns']:.0f})")
    print(f"redis-py EVALSHA token bucket per request: {lua['ns']:.0f} ns/op "
          f"(p50 {lua['p50_ns'] / 1000:.0f} us, p99 {lua['p99_ns'] / 1000:.0f} us)")
    print(f"ratio: {lua['ns'] / tg['ns']:.0f}x")
    if args.json:
        print(json.dumps({
            "tollgate_ns": round(tg["ns"], 1),
            "redis_lua_ns": round(lua["ns"], 1),
            "tollgate_min_ns": round(tg["min_ns"], 1),
            "tollgate_key_ns": round(tg["key_ns"], 1),
            **{k: round(tg[k], 1) for k in ("acquire_async_ns", "wsgi_middleware_ns",
                                             "wsgi_bare_app_ns", "asgi_middleware_ns",
                                             "asgi_bare_app_ns")},
            "loop_overhead_ns": round(tg["loop_and_builtin_call_ns"], 1),
            "redis_lua_p50_ns": lua["p50_ns"],
            "redis_lua_p99_ns": lua["p99_ns"],
            "iterations": args.iterations,
            "repetitions": args.repetitions,
            "python": platform.python_version(),
            "tollgate": tollgate.__version__,
            "cpus": os.cpu_count(),
        }))


if __name__ == "__main__":
    sys.exit(main())
