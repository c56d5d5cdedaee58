#!/usr/bin/env python3
"""Server-side cost of the lease script, plain and grouped, by the number of active tenants
in the group and by the number of keys one call carries (docs/quotas.md,
docs/performance.md). The script takes many keys per call (KEYS in threes, ARGV in
seventeens); --keys-per-call K sends K keys per EVALSHA, from 60 instances in turn, and
reports microseconds per call and per key.

Starts a redis-server on a free loopback port, loads the lease script from
sdk/src/store/redis/lua/lease.lua (its ARGV filled by the names of its `slots` table), and for each case sends pipelined EVALSHA calls with fresh request
ids, then reads usec_per_call of evalsha from INFO commandstats (time inside Redis, no
network). Standard library only.

    bench/redis/group_script_cost.py [--calls 20000] [--keys-per-call 1,128]
        [--script FILE] [--cases SUBSTRING]

--script measures another version of the script (e.g. the previous release's, from
`git show <commit>:sdk/src/store/redis/lua/lease.lua`); --cases runs only the cases whose
name contains the substring. Besides usec_per_call (wall time inside Redis, which a loaded
machine inflates when the server is preempted mid-call), the last column is the server
process's CPU time per key over the same calls (from /proc, includes reading the
commands and writing the replies), and cmds/key the commands the script ran per key
(`redis.call`s, from the same commandstats: a count, not a time, so the loaded machine
does not blur it); bytes/bucket is what a case's bucket hashes hold in Redis at the end of
its run (`MEMORY USAGE … SAMPLES 0`, averaged over the case's tenants): the request records
and instance records among them, a count the load does not blur either.
"""
import argparse, os, re, shutil, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b":"):
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("unexpected reply " + repr(line))

    def call(self, *args):
        self.s.sendall(resp(*args))
        return self.reply()

    def pipeline(self, commands, depth=200):
        for i in range(0, len(commands), depth):
            chunk = commands[i:i + depth]
            self.s.sendall(b"".join(resp(*c) for c in chunk))
            for _ in chunk:
                self.reply()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000, help="keys per case")
    ap.add_argument("--keys-per-call", default="1,128")
    ap.add_argument("--script", default=os.path.join(ROOT, "sdk/src/store/redis/lua/lease.lua"))
    ap.add_argument("--cases", default="")
    o = ap.parse_args()
    script = open(o.script).read()
    slots = re.findall(r"'([a-z_0-9]+)'", re.search(r"local slots = {([^}]*)}", script).group(1))
    port = free_port()
    tmp = tempfile.mkdtemp()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", tmp],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(400):  # up to 20 s: a loaded machine, or a server under valgrind
            try:
                c = Conn(port)
                c.call("PING")
                break
            except OSError:
                time.sleep(0.05)
        sha = c.call("SCRIPT", "LOAD", script)
        rid = [0]

        def key(tenant, group_rate, paced, holder):
            rid[0] += 1
            arg = dict(kind=0, want=10, min=1, ttl_us=8000000, rate=1e9, burst=1e9, limit=0,
                       window_us=0, holder="h%d" % holder, demand=100, held=0,
                       group_rate=group_rate, group_burst=group_rate, weight=1, guaranteed_rate=0,
                       fair_instances=paced, tenant="p:" + tenant)
            return (["tg:{g}:b:p:" + tenant, "tg:{g}:r:%d" % rid[0], "tg:{g}:g"],
                    [arg[name] for name in slots])

        def call(keys):
            ks, args = [], []
            for k, a in keys:
                ks += k
                args += a
            return ["EVALSHA", sha, len(ks)] + ks + args

        def cpu_s():
            with open("/proc/%d/stat" % server.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        print("%-34s %6s %10s %10s %12s %10s %13s" % ("case", "keys", "us/call", "us/key",
                                                      "cpu us/key", "cmds/key", "bytes/bucket"))
        results = {}
        cases = [("plain token bucket", 1, 0, 0), ("fair instances, no group", 1, 0, 1)]
        cases += [("group, %d active tenants" % n, n, 1e6, 1) for n in (1, 10, 100, 1000)]
        cases = [c for c in cases if o.cases in c[0]]
        for per in [int(x) for x in o.keys_per_call.split(",")]:
            for name, tenants, group_rate, paced in cases:
                c.call("FLUSHALL")
                c.pipeline([call([key("t%d" % i, group_rate, paced, h) for h in range(60)])
                            for i in range(tenants)])
                c.call("CONFIG", "RESETSTAT")
                cpu0 = cpu_s()
                n = max(1, o.calls // per)
                c.pipeline([call([key("t%d" % ((j * per + i) % tenants), group_rate, paced,
                                      (j * per + i) % 60) for i in range(per)])
                            for j in range(n)], depth=max(1, 200 // per))
                stats = c.call("INFO", "commandstats")
                cpu = (cpu_s() - cpu0) * 1e6 / (n * per)
                us = float(re.search(r"cmdstat_evalsha:.*usec_per_call=([0-9.]+)", stats).group(1))
                inner = sum(int(n) for cmd, n in re.findall(r"cmdstat_([a-z|]+):calls=(\d+)", stats)
                            if cmd not in ("evalsha", "info", "config|resetstat"))
                results[(name, per)] = us
                held = sum(int(c.call("MEMORY", "USAGE", "tg:{g}:b:p:t%d" % i, "SAMPLES", "0") or 0)
                           for i in range(tenants))
                print("%-34s %6d %10.1f %10.2f %12.2f %10.2f %13.0f" % (
                    name, per, us, us / per, cpu, inner / (n * per), held / tenants))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
