#!/usr/bin/python3
"""Turns a tollgate_fleet --timeline CSV into an SVG: the fleet's and each group's use of
its capacity per 100 ms, store calls per shard, and the fault windows shaded.

    bench/fleet/plot.py TIMELINE.csv OUT.svg [--title TEXT] [--groups N]

Needs Debian's python3-matplotlib (apt-get install python3-matplotlib).
"""
import argparse
import csv
import collections
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plot.py: needs matplotlib (apt-get install python3-matplotlib)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("timeline")
    ap.add_argument("out", help="OUT.svg (or .png)")
    ap.add_argument("--title", default="tollgate_fleet")
    ap.add_argument("--groups", type=int, default=5, help="groups drawn one by one")
    a = ap.parse_args()

    fleet = []                                   # (t, admitted / capacity)
    groups = collections.defaultdict(list)       # name -> [(t, admitted / capacity)]
    shards = collections.defaultdict(list)       # id -> [(t, calls per second)]
    faults = collections.defaultdict(list)       # "stop:2" -> [t, ...]
    with open(a.timeline) as f:
        for row in csv.DictReader(f):
            t = float(row["t"])
            kind = row["kind"]
            if kind == "fleet":
                fleet.append((t, float(row["admitted"]) / max(1.0, float(row["capacity"]))))
            elif kind == "group":
                groups[row["id"]].append((t, float(row["admitted"]) / max(1.0, float(row["capacity"]))))
            elif kind == "shard":
                shards[row["id"]].append((t, float(row["calls"] or 0) * 10))
            elif kind == "fault":
                faults[row["id"]].append(t)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for name in sorted(groups)[: a.groups]:
        xs, ys = zip(*groups[name])
        top.plot(xs, ys, lw=0.6, alpha=0.6, label=name)
    if fleet:
        xs, ys = zip(*fleet)
        top.plot(xs, ys, lw=1.4, color="black", label="fleet")
    top.axhline(1.0, color="grey", lw=0.8, ls="--")
    top.set_ylabel("admitted / capacity per 100 ms")
    top.set_ylim(0, 1.6)
    top.legend(loc="upper right", fontsize=7, ncol=3)
    for sid in sorted(shards, key=int):
        xs, ys = zip(*shards[sid])
        bottom.plot(xs, ys, lw=0.7, label="shard " + sid)
    bottom.set_ylabel("script runs per second")
    bottom.set_xlabel("virtual seconds")
    bottom.legend(loc="upper right", fontsize=7, ncol=4)
    colours = {"stop": "red", "kill": "darkred", "slow": "orange", "drop": "purple",
               "stall": "blue", "restart": "teal"}
    for fid, ts in faults.items():
        kind = fid.split(":")[0]
        for ax in (top, bottom):
            ax.axvspan(min(ts) - 0.1, max(ts), color=colours.get(kind, "grey"), alpha=0.12)
        top.text(min(ts), 1.5, fid, fontsize=7, color=colours.get(kind, "grey"))
    fig.suptitle(a.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out)


if __name__ == "__main__":
    main()
