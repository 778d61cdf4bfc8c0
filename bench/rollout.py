#!/usr/bin/env python3
"""The rollout benchmark: the example under a fixed-rate load, one update of its web
service in the middle, done three ways in one run, one after another:

- shoal: `shoal up -d` on the changed file (start-first, shoal's default);
- shoal stop-first: the same with `update_config.order: stop-first`;
- docker-compose 1.29.2 (Debian's): `docker-compose up -d` on the same change.

Load is open loop (oha -q, latency measured from the intended send time), so an
outage shows as failed or very late requests. For each: requests failed over the
whole run (nothing else disturbs it), p99 and max latency in the update window (from
the command's start to a second after it returned), the steady p99 before it, and how long
the update took (`up -d` returns when shoal's rollout is complete, its last replica
watched for the 5 s monitor window included; Compose's when its container started). Then the time from a replica's exit to running again, first and
repeated crash, for shoal and for a plain `docker run --restart always` container.

Run it through bench/rollout.sh, which builds and installs what it needs.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples/hello/compose.yaml")
SHOAL = os.path.join(ROOT, "target/release/shoal")
UPDATE = "services:\n  web:\n    environment:\n      BENCH_REVISION: \"2\"\n"
STOP_FIRST = "services:\n  web:\n    deploy:\n      update_config:\n        order: stop-first\n"


def sh(cmd, env=None, check=True):
    return subprocess.run(cmd, env=env, check=check, capture_output=True, text=True)


def write(dir, name, text):
    path = os.path.join(dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Shoal:
    """The example as a shoal project, with `extra` compose files."""

    def __init__(self, name, port, extra, tmp):
        self.name, self.port, self.extra = name, port, extra
        self.env = dict(os.environ, HELLO_PORT=str(port), SHOAL_STATE_DIR=tmp)
        self.label = "shoal" if not extra else "shoal stop-first"

    def cmd(self, *files):
        out = [SHOAL, "-p", self.name, "-f", EXAMPLE]
        for f in list(self.extra) + list(files):
            out += ["-f", f]
        return out

    def up(self):
        sh(self.cmd() + ["up", "-d"], self.env)

    def update(self, update_file):
        sh(self.cmd(update_file) + ["up", "-d"], self.env)

    def down(self):
        sh(self.cmd() + ["down", "-v"], self.env, check=False)


class Compose:
    """The example under docker-compose 1.29.2: one web replica (Compose cannot
    publish one host port from several), and the keys 1.29 does not know removed."""

    label = "docker-compose"

    def __init__(self, name, port, tmp):
        self.name, self.port = name, port
        text = open(EXAMPLE).read()
        keep = []
        skip_block = False
        for line in text.splitlines():
            if line.startswith("name:"):
                continue
            if "start_interval" in line:
                continue
            if line.strip().startswith("x-shoal:"):
                skip_block = True
                indent = len(line) - len(line.lstrip())
                continue
            if skip_block:
                if line.strip() and (len(line) - len(line.lstrip())) <= indent:
                    skip_block = False
                else:
                    continue
            keep.append(line.replace("replicas: 3", "replicas: 1"))
        self.file = write(tmp, "compose-1.29.yaml", "\n".join(keep) + "\n")
        # Relative build contexts resolve from the file's folder: point them back.
        with open(self.file) as f:
            fixed = f.read().replace("build: ./", f"build: {os.path.dirname(EXAMPLE)}/")
        with open(self.file, "w") as f:
            f.write(fixed)
        self.env = dict(os.environ, HELLO_PORT=str(port))

    def up(self):
        sh(["docker-compose", "-p", self.name, "-f", self.file, "up", "-d", "--build"], self.env)

    def update(self, update_file):
        sh(["docker-compose", "-p", self.name, "-f", self.file, "-f", update_file, "up", "-d"], self.env)

    def down(self):
        sh(["docker-compose", "-p", self.name, "-f", self.file, "down", "-v"], self.env, check=False)


def wait_serving(port, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/"],
                           capture_output=True, text=True)
        if r.stdout == "200":
            return
        time.sleep(0.5)
    raise SystemExit(f"nothing serves on {port}")


def p(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


def one(target, args, tmp):
    """Runs one scenario: (label, metrics)."""
    update_file = write(tmp, "update.yaml", UPDATE)
    target.down()
    target.up()
    wait_serving(target.port)
    csv_path = os.path.join(tmp, f"{target.name}.csv")
    n = args.rate * args.duration
    t0 = time.time()
    oha = subprocess.Popen(["oha", "-n", str(n), "-q", str(args.rate), "-c", "64", "-t", "10s",
                            "--latency-correction", "--no-tui", "--output-format", "csv", "-o", csv_path,
                            f"http://127.0.0.1:{target.port}/"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(args.update_at)
    start = time.time() - t0
    target.update(update_file)
    end = time.time() - t0
    oha.wait()
    rows = []
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            ok = row["status"].startswith("2")
            rows.append((float(row["request-start"]), float(row["request-duration"]) * 1000, ok))
    lost = max(0, n - len(rows))  # what oha wrote no row for got no answer
    # The window: from the command's start until a second after it returned, or
    # after the last failed answer when the outage outlasts the command (Compose
    # returns once the new container started, before it serves). Requests that got
    # no answer at all (refused, reset) have no row in oha's CSV, so no time: they
    # count in `failed` over the run, which nothing but the update disturbs.
    last_fail = max((r[0] for r in rows if r[0] >= start and not r[2]), default=0.0)
    window_end = max(end + 1.0, last_fail + 0.5)
    window = [r for r in rows if start <= r[0] <= window_end]
    steady = [r[1] for r in rows if r[0] < start and r[2]]
    m = {
        "update_s": end - start,
        "window_s": window_end - start,
        "failed_total": sum(1 for r in rows if not r[2]) + lost,
        "sent": n,
        "p99_steady": p(steady, 0.99),
        "p99_window": p([r[1] for r in window], 0.99),
        "max_window": max((r[1] for r in window), default=0.0),
    }
    target.down()
    return target.label, m


def restart_gaps(ids_of, kill_twice=True):
    """Exit-to-running of a container killed twice in a row (first, repeated)."""
    gaps = []
    for _ in range(2 if kill_twice else 1):
        cid = ids_of()
        # SIGKILL the process from the host, as a crash would: the engine takes a
        # `docker kill` for a manual stop and does not restart it.
        pid = sh(["docker", "inspect", "-f", "{{.State.Pid}}", cid]).stdout.strip()
        sh(["kill", "-9", pid])
        end = time.time() + 30
        while time.time() < end:
            out = sh(["docker", "inspect", "-f", "{{.State.Running}} {{.State.FinishedAt}} {{.State.StartedAt}}", cid],
                     check=False).stdout.split()
            if len(out) == 3 and out[0] == "true":
                fin, sta = parse_time(out[1]), parse_time(out[2])
                if sta > fin:
                    gaps.append(sta - fin)
                    break
            time.sleep(0.05)
        time.sleep(1.0)
    return gaps


def parse_time(s):
    # 2026-12-01T21:59:26.123456789Z
    date, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
    base = time.mktime(time.strptime(date, "%Y-%m-%dT%H:%M:%S"))
    return base + float("0." + frac)


def crash(args, tmp):
    port = args.port + 5
    s = Shoal("rb-crash", port, [], tmp)
    s.down()
    s.up()
    wait_serving(port)

    def web1():
        out = sh(["docker", "ps", "-aq", "--filter", "label=io.shoal.project=rb-crash",
                  "--filter", "name=rb-crash-web-1"]).stdout.split()
        return out[0]

    shoal = restart_gaps(web1)
    s.down()
    sh(["docker", "rm", "-f", "rb-plain"], check=False)
    sh(["docker", "run", "-d", "--name", "rb-plain", "--restart", "always", "debian:bookworm-slim",
        "sleep", "infinity"])
    plain = restart_gaps(lambda: "rb-plain")
    sh(["docker", "rm", "-f", "rb-plain"], check=False)
    return shoal, plain


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--update-at", type=int, default=20)
    ap.add_argument("--port", type=int, default=18700)
    ap.add_argument("--only", default="shoal,stop-first,compose")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rollout-bench-")
    stop_first = write(tmp, "stop-first.yaml", STOP_FIRST)
    targets = {
        "shoal": Shoal("rb-shoal", args.port, [], tmp),
        "stop-first": Shoal("rb-stopfirst", args.port + 1, [stop_first], tmp),
        "compose": Compose("rb-compose", args.port + 2, tmp),
    }
    results = []
    try:
        for key in args.only.split(","):
            results.append(one(targets[key], args, tmp))
        report(args, results)
        shoal_gaps, plain_gaps = crash(args, tmp)
    finally:
        for t in targets.values():
            t.down()
    fmt = lambda g: ", ".join(f"{x * 1000:.0f} ms" for x in g)
    print(f"exit to running again (first, repeated crash): shoal {fmt(shoal_gaps)}; "
          f"docker run --restart always {fmt(plain_gaps)}")
    json.dump({"results": results, "crash": {"shoal": shoal_gaps, "plain": plain_gaps}},
              open(os.path.join(tmp, "results.json"), "w"), indent=2)
    print(f"(raw: {tmp})")


def report(args, results):
    print(f"rollout of web (an environment change) at {args.update_at} s of {args.duration} s at "
          f"{args.rate} rps; shoal: 3 web replicas, docker-compose: 1 (one host port)")
    print(f"{'':18} {'update':>8} {'failed':>8} {'of':>7} {'p99 steady':>11} "
          f"{'p99 update':>11} {'max update':>11}")
    for label, m in results:
        print(f"{label:18} {m['update_s']:7.1f}s {m['failed_total']:8} {m['sent']:7} "
              f"{m['p99_steady']:9.1f}ms {m['p99_window']:9.1f}ms {m['max_window']:9.0f}ms")
    for label, m in results:
        if m["p99_steady"]:
            print(f"{label}: p99 during the update / steady p99 = {m['p99_window'] / m['p99_steady']:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
