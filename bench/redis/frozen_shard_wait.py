#!/usr/bin/env python3
"""How long decisions wait when the shard freezes (SIGSTOP), at the SDK's defaults
(docs/resilience.md, "A refill that is overdue"). Starts a redis-server on a free loopback
port, 32 threads calling Limiter.acquire(key, timeout=2 s) on 32 tenants (quota far above
the load), freezes the server for --freeze seconds in the middle of the run, and prints the
wait of every decision before, during and after the freeze: the largest, the p99, how many
waited more than 50 ms, and the reasons of the denials. Needs the installed `tollgate`
package (bindings/python/test.sh builds one) and redis-server. Bounded: --seconds (8).

    python3 bench/redis/frozen_shard_wait.py [--seconds 8] [--freeze 3]
"""
import argparse, collections, json, os, signal, socket, subprocess, tempfile, threading, time

import tollgate


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--freeze", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=32)
    args = ap.parse_args()
    port = free_port()
    work = tempfile.mkdtemp(prefix="tollgate-frozen-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", work],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        config = {"store": {"type": "redis", "shards": [f"redis://127.0.0.1:{port}"]},
                  "policies": [{"match": "tenant:*", "type": "token_bucket",
                                "rate": 20000, "burst": 20000}]}
        limiter = tollgate.Limiter(config)
        print("settings: the SDK's defaults (leases, fallback share mode, overdue floor 20 ms);"
              " policy rate 20000/s, burst 20000, per tenant;", args.threads, "threads")
        t0 = time.monotonic()
        freeze_at = (args.seconds - args.freeze) / 2
        freeze_end = freeze_at + args.freeze
        stop = threading.Event()
        samples = [[] for _ in range(args.threads)]  # (start, wait, allowed, reason)

        def run(i):
            key = f"tenant:{i}"
            out = samples[i]
            while not stop.is_set():
                a = time.monotonic()
                d = limiter.acquire(key, 1, timeout=2.0)
                b = time.monotonic()
                out.append((a - t0, b - a, d.allowed, str(d.reason)))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.threads)]
        for t in threads:
            t.start()
        time.sleep(freeze_at)
        os.kill(server.pid, signal.SIGSTOP)
        time.sleep(args.freeze)
        os.kill(server.pid, signal.SIGCONT)
        time.sleep(args.seconds - freeze_end)
        stop.set()
        for t in threads:
            t.join()
        report = {}
        for name, lo, hi in (("before", 0, freeze_at), ("frozen", freeze_at, freeze_end),
                             ("after", freeze_end, 1e9)):
            rows = [r for s in samples for r in s if lo <= r[0] < hi]
            waits = sorted(r[1] for r in rows)
            denied = collections.Counter(r[3] for r in rows if not r[2])
            reasons = collections.Counter(r[3] for r in rows if r[2])
            report[name] = {
                "decisions": len(rows),
                "max_wait_ms": round(1e3 * waits[-1], 2) if waits else 0,
                "p99_wait_ms": round(1e3 * waits[int(0.99 * (len(waits) - 1))], 3) if waits else 0,
                "waited_over_50ms": sum(1 for w in waits if w > 0.05),
                "denied": dict(denied),
                "admitted_by_reason": dict(reasons),
            }
        st = limiter.stats()
        report["refills_overdue"] = st["refills_overdue"]
        report["fallback_tokens"] = st["fallback_tokens"]
        print(json.dumps(report, indent=1))
        limiter.close()
    finally:
        try:
            os.kill(server.pid, signal.SIGCONT)
        except OSError:
            pass
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
