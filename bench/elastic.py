#!/usr/bin/env python3
"""The elasticity benchmark: shoal's autoscaler against emulations of Kubernetes' HPA
and Knative's KPA, all three driving the same actuator (shoal's control plane, with
`x-shoal.autoscale.policy` set to `shoal`, `hpa` or `kpa`) on the real engine.

Run it through bench/elastic.sh, which builds what it needs. Each policy gets its own
project (elastic-<policy>) of CPU-limited testkit replicas on the same schedule of
offered load. In the scenarios with steps (A, C) the policies run one after another:
side by side, one project's container starts (a burst of work for the engine on two
cores) landed on the others' latency and moved their SLO recovery by several seconds.
B, steady load, runs them side by side so the machine's noise falls on all three.

Load is open loop: one `oha -q` per phase, started at the phase's time whatever the
previous one is still waiting for, with latency measured from the intended send time
(--latency-correction). Every request burns BURN_MS of CPU time in a replica limited to
CPUS cores, so one replica serves CAPACITY requests per second at most; the autoscalers
aim at TARGET requests per second per replica (metric `rps`, counted on arrival by
shoal's balancer, the same numbers for all three policies).
"""

import argparse
import csv
import http.client
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

CPUS = 0.1
BURN_MS = 1
TARGET = 20
LOW, HIGH, MID = 19, 190, 95
SLO_MS = 100
MAX = 12
POLICIES = ["shoal", "hpa", "kpa"]


def schedules(scale):
    """Scenario name -> (phases of (seconds, offered rps), seconds of warm-up).

    B first holds its mean for a minute, unmeasured: it is about steady load, not
    the climb from one replica to it (which A and C measure)."""
    rng = random.Random(5)
    noisy = [(5, round(MID * rng.uniform(0.75, 1.25))) for _ in range(120)]
    out = {
        "A": ([(60, LOW), (300, HIGH), (300, LOW)], 0),
        "B": ([(60, MID)] + noisy, 60),
        "C": ([(30, LOW)] + [(60, HIGH), (60, LOW)] * 5, 0),
    }
    return {k: ([(d * scale, r) for d, r in v], w * scale) for k, (v, w) in out.items()}


def ideal(rate):
    return min(MAX, max(1, math.ceil(rate / TARGET)))


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.unix_path)
        self.sock = s


def status(sock):
    c = UnixHTTP(sock)
    try:
        c.request("GET", "/status")
        return json.loads(c.getresponse().read())
    finally:
        c.close()


COMPOSE = """name: {project}
services:
  app:
    build: {context}
    ports: ["127.0.0.1:{port}:8080"]
    stop_grace_period: 2s
    deploy:
      resources: {{limits: {{cpus: '{cpus}'}}}}
    x-shoal:
      health: {{http: /healthz, interval: 500ms}}
      autoscale: {{min: 1, max: {max}, metric: rps, target: {target}, policy: {policy}}}
"""


class Target:
    """One policy's project."""

    def __init__(self, args, policy, port):
        self.policy = policy
        self.project = f"elastic-{policy}"
        self.port = port
        self.file = os.path.join(args.work, f"{self.project}.yaml")
        with open(self.file, "w") as f:
            f.write(
                COMPOSE.format(
                    project=self.project,
                    context=args.context,
                    port=port,
                    cpus=CPUS,
                    max=MAX,
                    target=TARGET,
                    policy=policy,
                )
            )
        self.shoal = [args.shoal, "-f", self.file]
        self.sock = os.path.join(os.environ["SHOAL_STATE_DIR"], self.project, "control.sock")

    def up(self):
        subprocess.run(self.shoal + ["up", "-d"], check=True, stdout=subprocess.DEVNULL)

    def down(self):
        subprocess.run(self.shoal + ["down"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def load(target, phases, t0, out_dir):
    """Starts one oha per phase at its time; returns [(phase start, csv path, sent)]."""
    runs = []
    procs = []
    start = 0.0
    url = f"http://127.0.0.1:{target.port}/burn?ms={BURN_MS}"
    for i, (secs, rate) in enumerate(phases):
        n = max(1, round(secs * rate))
        path = os.path.join(out_dir, f"{target.policy}-{i:03}.csv")
        delay = t0 + start - time.time()
        if delay > 0:
            time.sleep(delay)
        cmd = ["oha", "-n", str(n), "-q", str(rate), "-c", "512", "-t", "30s",
               "--latency-correction", "--no-tui", "--output-format", "csv", "-o", path, url]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        runs.append((time.time() - t0, path, n))
        start += secs
    for p in procs:
        p.wait()
    return runs


def poll(targets, t0, end, series):
    while time.time() < end:
        now = time.time() - t0
        for t in targets:
            try:
                app = status(t.sock)["services"]["app"]
                series[t.policy].append((now, app["desired"], app["running"], app["ready"]))
            except (OSError, KeyError, ValueError):
                pass
        time.sleep(0.5)


def requests(runs):
    """[(intended time, latency ms, or None when it failed)]."""
    out = []
    for at, path, sent in runs:
        rows = 0
        try:
            with open(path) as f:
                for row in csv.DictReader(f):
                    rows += 1
                    t = at + float(row["request-start"])
                    ms = float(row["request-duration"]) * 1000
                    out.append((t, ms if row["status"].startswith("2") else None))
        except FileNotFoundError:
            pass
        # What oha did not write down got no answer (refused, reset, timed out).
        out.extend((at, None) for _ in range(max(0, sent - rows)))
    return out


def p99(values):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]


def at(series, t):
    """The last polled (desired, running, ready) at or before t."""
    last = series[0][1:] if series else (1, 1, 1)
    for s in series:
        if s[0] > t:
            break
        last = s[1:]
    return last


def analyse(phases, warmup, series, reqs, trace=False):
    series = [x for x in series if x[0] >= warmup]
    reqs = [r for r in reqs if r[0] >= warmup]
    edges = []
    start = 0.0
    for secs, rate in phases:
        if start >= warmup:
            edges.append((start, start + secs, rate))
        start += secs
    end = start
    buckets = {}
    failed = 0
    for t, ms in reqs:
        if ms is None:
            failed += 1
            ms = float("inf")
        buckets.setdefault(int(t), []).append(ms)

    first, enough, slo, over = [], [], [], []
    for i in range(1, len(edges)):
        s, e, rate = edges[i]
        before = edges[i - 1][2]
        if rate < 2 * before:
            continue
        want = ideal(rate)
        ready0 = at(series, s)[2]
        inside = [x for x in series if s <= x[0] < e]
        # Already enough ready at the step (replicas kept from the last one): 0.
        f = 0.0 if ready0 >= want else next((x[0] - s for x in inside if x[3] > ready0), None)
        g = next((x[0] - s for x in inside if x[3] >= want), None)
        # Met again: the first second from which five in a row keep p99 within it.
        ok = [p99(buckets.get(b, [])) <= SLO_MS for b in range(int(s), int(e))]
        back = next((i for i in range(len(ok) - 4) if all(ok[i:i + 5])), None)
        slo.append(None if back is None else float(back))
        if trace:
            print(f"step at {s:.0f} s to {rate} rps (want {want}): second, desired/running/ready, "
                  f"requests, p99 ms")
            for b in range(int(s), min(int(e), int(s) + 25)):
                d, r, y = at(series, b + 0.99)
                got = buckets.get(b, [])
                print(f"  {b - int(s):3} {d:2}/{r:2}/{y:2} {len(got):4} {p99(got):8.0f}")
        first.append(f)
        enough.append(g)
        over.append(max([x[1] - want for x in inside] + [0]))

    def med(xs):
        # A step never met counts as never.
        return None if not xs or None in xs else statistics.median(xs)

    dirs = []
    for a, b in zip(series, series[1:]):
        if b[1] != a[1]:
            dirs.append(1 if b[1] > a[1] else -1)
    reversals = sum(1 for a, b in zip(dirs, dirs[1:]) if a != b)
    used = sum((b[0] - a[0]) * a[2] for a, b in zip(series, series[1:]) if a[0] < end)
    need = sum((e - s) * ideal(r) for s, e, r in edges)
    lat = [ms for _, ms in reqs if ms is not None]
    return {
        "first_ready_s": med(first),
        "enough_ready_s": med(enough),
        "slo_recovered_s": med(slo),
        "overshoot": max(over) if over else None,
        "reversals_per_hour": reversals / ((end - warmup) / 3600),
        "replica_seconds": used,
        "ideal_replica_seconds": need,
        "vs_ideal": used / need if need else 0,
        "requests": len(reqs),
        "failed": failed,
        "p99_ms": p99(lat),
        "steps": len(first),
    }


def fmt(v, unit=""):
    if v is None:
        return "never"
    if isinstance(v, float):
        return f"{v:.1f}{unit}"
    return f"{v}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--analyse", metavar="DIR", help="only recompute the table from a kept run (OUT=DIR)")
    ap.add_argument("--shoal")
    ap.add_argument("--context", help="the testkit build context")
    ap.add_argument("--work")
    ap.add_argument("--ports", default="18601,18602,18603")
    ap.add_argument("--scenarios", default="A,B,C")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--together", default="B",
                    help="scenarios whose policies run side by side; in the others one policy runs after another")
    ap.add_argument("--trace", action="store_true", help="print the 25 s after each step, second by second")
    ap.add_argument("--scale", type=float, default=1.0, help="time compression for a trial run")
    args = ap.parse_args()

    policies = args.policies.split(",")
    if args.analyse:
        return reanalyse(args, policies)
    ports = [int(p) for p in args.ports.split(",")]
    targets = [Target(args, p, port) for p, port in zip(policies, ports)]
    all_phases = schedules(args.scale)
    results = {}
    together = args.together.split(",")
    try:
        for name in args.scenarios.split(","):
            phases, warmup = all_phases[name]
            out_dir = os.path.join(args.work, name)
            os.makedirs(out_dir, exist_ok=True)
            series, runs = {}, {}
            groups = [targets] if name in together else [[t] for t in targets]
            for group in groups:
                s, r = run(group, phases, out_dir)
                series.update(s)
                runs.update(r)
            for t in targets:
                r = analyse(phases, warmup, series[t.policy], requests(runs[t.policy]), args.trace)
                results[(name, t.policy)] = r
                print(f"{name} {t.policy}: {json.dumps(r)}", flush=True)
            with open(os.path.join(out_dir, "series.json"), "w") as f:
                json.dump(series, f)
            with open(os.path.join(out_dir, "runs.json"), "w") as f:
                json.dump(runs, f)
    finally:
        for t in targets:
            t.down()
    table(results)


def run(group, phases, out_dir):
    """Offers `phases` to each target of `group` at once, from fresh projects; returns
    each one's polled series and oha runs."""
    for t in group:
        t.down()
    for t in group:
        t.up()
    t0 = time.time() + 2
    total = sum(d for d, _ in phases)
    series = {t.policy: [] for t in group}
    poller = threading.Thread(target=poll, args=(group, t0, t0 + total + 5, series))
    poller.start()
    runs = {}
    threads = [
        threading.Thread(target=lambda t=t: runs.__setitem__(t.policy, load(t, phases, t0, out_dir)))
        for t in group
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    poller.join()
    for t in group:
        t.down()
    return series, runs


def reanalyse(args, policies):
    """The table again from a kept run's series and oha's CSVs."""
    results = {}
    for name in args.scenarios.split(","):
        phases, warmup = schedules(args.scale)[name]
        d = os.path.join(args.analyse, name)
        if not os.path.exists(os.path.join(d, "series.json")):
            continue
        series = json.load(open(os.path.join(d, "series.json")))
        try:
            runs = json.load(open(os.path.join(d, "runs.json")))
        except FileNotFoundError:
            # Older runs kept no start times: the schedule's (oha started within
            # milliseconds of it).
            runs = {}
            for p in policies:
                start, runs[p] = 0.0, []
                for i, (secs, rate) in enumerate(phases):
                    runs[p].append((start, os.path.join(d, f"{p}-{i:03}.csv"), max(1, round(secs * rate))))
                    start += secs
        for p in policies:
            if p in series:
                results[(name, p)] = analyse(phases, warmup, series[p], requests(runs[p]), args.trace)
    table(results)


def table(results):
    print()
    print(f"replicas: {CPUS} CPU, {BURN_MS} ms CPU per request, target {TARGET} rps per replica; "
          f"SLO p99 <= {SLO_MS} ms")
    cols = ["scenario", "policy", "first Ready", "enough Ready", "SLO back", "overshoot",
            "reversals/h", "replica-s vs ideal", "failed", "p99"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for (name, policy), r in results.items():
        stepped = r["steps"] > 0
        print("| " + " | ".join([
            name, policy,
            fmt(r["first_ready_s"], " s") if stepped else "-",
            fmt(r["enough_ready_s"], " s") if stepped else "-",
            fmt(r["slo_recovered_s"], " s") if stepped else "-",
            fmt(r["overshoot"]) if stepped else "-",
            f"{r['reversals_per_hour']:.0f}",
            f"{r['vs_ideal']:.2f}x ({r['replica_seconds']:.0f}/{r['ideal_replica_seconds']:.0f})",
            f"{r['failed']}/{r['requests']}",
            f"{r['p99_ms']:.0f} ms",
        ]) + " |")


if __name__ == "__main__":
    sys.exit(main())
