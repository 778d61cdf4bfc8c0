"""The log store benchmark: see bench/logs.sh."""

import argparse
import os
import statistics
import subprocess
import time

PAD = 150
PROJECT = "bench-logs"


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def cpu_seconds(pid):
    """utime + stime of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steal():
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def engine_last(cid):
    """The engine's newest line of the container, with its time."""
    return subprocess.run(["docker", "logs", "-t", "--tail", "1", cid], capture_output=True, text=True).stdout.strip()


def wait_stored(shoal, env, cid, last_seq, timeout=1800):
    """Waits until the replica printed seq `last_seq` and the store holds it. The store
    is asked for the lines since that one's time, so a poll reads one segment."""
    deadline = time.time() + timeout
    want = f"seq={last_seq} "
    while want not in engine_last(cid):
        if time.time() > deadline:
            raise SystemExit("the replica did not finish printing")
        time.sleep(0.5)
    ts = engine_last(cid).split(" ", 1)[0]
    while time.time() < deadline:
        out = subprocess.run(
            [shoal, "-p", PROJECT, "logs", "-n", "1", "--no-log-prefix", "--since", ts],
            capture_output=True, text=True, env=env,
        ).stdout
        if want in out:
            return
        time.sleep(0.2)
    raise SystemExit(f"the store did not get seq={last_seq} in {timeout}s")


def count_stored(shoal, env):
    """Lines the store holds, as `shoal logs` reads them."""
    out = subprocess.run(
        f"{shoal} -p {PROJECT} logs --no-log-prefix | wc -l", shell=True, capture_output=True, text=True, env=env
    ).stdout
    return int(out.strip() or 0)


def container(env):
    deadline = time.time() + 60
    while time.time() < deadline:
        ids = sh("docker", "ps", "-q", "--no-trunc", "--filter", f"label=io.shoal.project={PROJECT}").split()
        if ids:
            return ids[0]
        time.sleep(0.2)
    raise SystemExit("no replica started")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--lines", type=int, default=5_500_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    env = dict(os.environ)
    compose = os.path.join(a.work, "compose.yaml")
    with open(compose, "w") as f:
        f.write(
            "services:\n"
            "  app:\n"
            f"    build: {a.work}/context\n"
            "    environment:\n"
            f"      PRINT_EVERY_MS: '0'\n      PRINT_LINES: '{a.lines}'\n"
            f"      PRINT_STDERR_EVERY: '0'\n      PRINT_PAD: '{PAD}'\n"
            # The engine keeps every line too, for `docker logs | grep` to search.
            "    logging: {driver: json-file, options: {max-size: 8g}}\n"
            "x-shoal:\n  logs: {max_size: 8G, segment_size: 64M}\n"
        )
    base = [a.shoal, "-p", PROJECT, "-f", compose]
    sh(*base, "build", env=env)
    last = a.lines - 1

    # Ingest, live: the replica prints while the control plane collects.
    t0 = time.time()
    up = subprocess.run(base + ["up", "-d"], capture_output=True, text=True, env=env, check=True)
    pid = int(up.stderr.split("control plane pid ")[1].split(",")[0])
    sh("taskset", "-p", "-c", "1", str(pid))
    cpu0 = cpu_seconds(pid)
    cid = container(env)
    wait_stored(a.shoal, env, cid, last)
    live_s, live_cpu = time.time() - t0, cpu_seconds(pid) - cpu0
    stored_live = count_stored(a.shoal, env)

    # What the engine serves at best: the same lines, read back to /dev/null.
    t = time.time()
    subprocess.run(["docker", "logs", "-t", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    docker_read_s = time.time() - t

    # Ingest, catching up: the store removed, a new control plane refills it.
    subprocess.run(["kill", "-9", str(pid)], check=True)
    time.sleep(1)
    state = os.path.join(env["SHOAL_STATE_DIR"], PROJECT)
    sh("rm", "-rf", os.path.join(state, "logs"))
    t = time.time()
    up = subprocess.run(base + ["up", "-d"], capture_output=True, text=True, env=env, check=True)
    pid = int(up.stderr.split("control plane pid ")[1].split(",")[0])
    sh("taskset", "-p", "-c", "1", str(pid))
    cpu0 = cpu_seconds(pid)
    wait_stored(a.shoal, env, cid, last)
    catch_s, catch_cpu = time.time() - t, cpu_seconds(pid) - cpu0
    store_bytes = sum(
        os.path.getsize(os.path.join(state, "logs", n)) for n in os.listdir(os.path.join(state, "logs"))
    )

    print(f"lines: {a.lines} of ~{PAD + 40} bytes; stored live {stored_live}, after catch-up {count_stored(a.shoal, env)}; store {store_bytes / 1e9:.2f} GB")
    print("| ingest | lines/s | control plane CPU µs/line |")
    print("|---|---:|---:|")
    print(f"| live (printing as fast as it can) | {a.lines / live_s:,.0f} | {live_cpu / a.lines * 1e6:.2f} |")
    print(f"| catch-up (store refilled from the engine) | {a.lines / catch_s:,.0f} | {catch_cpu / a.lines * 1e6:.2f} |")
    print(f"| `docker logs -t` to /dev/null (the engine's ceiling) | {a.lines / docker_read_s:,.0f} | |")

    # Search: a rare pattern, each tool on the same lines, interleaved.
    plain = os.path.join(a.work, "plain.log")
    with open(plain, "w") as f:
        subprocess.run(["docker", "logs", cid], stdout=f, stderr=subprocess.DEVNULL, check=True)
    pattern = "seq=12345[0-9] "
    tools = {
        "shoal logs --grep": f"{a.shoal} -p {PROJECT} logs --no-log-prefix --grep '{pattern}'",
        "docker logs | grep": f"docker logs {cid} 2>&1 | grep '{pattern}'",
        "grep (plain file)": f"grep '{pattern}' {plain}",
    }
    times = {k: [] for k in tools}
    found = {}
    steal0 = steal()
    for _ in range(a.rounds):
        for name, cmd in tools.items():
            subprocess.run(["sync"])
            t = time.time()
            out = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env).stdout
            times[name].append(time.time() - t)
            found[name] = len(out.splitlines())
    grep_s = statistics.median(times["grep (plain file)"])
    docker_s = statistics.median(times["docker logs | grep"])
    print(f"\nsearch for /{pattern}/ over {os.path.getsize(plain) / 1e9:.2f} GB of lines, {a.rounds} rounds, steal {steal() - steal0} ticks")
    print("| tool | median s | matches | × grep | × docker logs \\| grep |")
    print("|---|---:|---:|---:|---:|")
    for name in tools:
        m = statistics.median(times[name])
        print(f"| {name} | {m:.2f} | {found[name]} | {m / grep_s:.2f} | {m / docker_s:.2f} |")


if __name__ == "__main__":
    main()
