"""Load and leaks: many pods at once, and many pods one after the other.

1. ``--at-once`` pods (default 32) started together on the default network, each by its own
   ``sandbox run --detach`` (as 32 users or a script would): the time until all have started,
   that their addresses are distinct, and that every one answers HTTP at its address with its
   own name (checked from the node netns); then all stopped and collected.
2. ``--cycles`` (default 200) sequential run/rm cycles of a pod on the default network, by the
   library in this one process (as a notebook drives it), next to a witness pod that keeps the
   node netns: what could grow is sampled every cycle — this process's open descriptors, mounts
   (below the state dir and the netns handles), netns handles, files under the state dir,
   iptables rules (the host's and the node's) — and the first and last samples are printed with
   the median cycle time.

Needs root; state in $SANDBOX_DIR (bench/run.py gives a temporary one; else a temp dir), every
pod stopped and collected, also on failure. Heavy for a shared 2-core machine (32 Python
processes at once): say so before running it. Run: ``.venv/bin/python bench/bench_load.py``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SANDBOX = [sys.executable, "-m", "sandbox"]


def http_get(node: str, ip: str, port: int, timeout: float = 30) -> str:
    from sandbox.net import netns

    def work() -> str:
        with netns.enter(node):
            with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=3) as r:
                return r.read().decode()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return netns.in_thread(work)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def at_once(n: int) -> dict:
    from sandbox.pod import stage0 as pod
    cmd = "mkdir -p /w; hostname > /w/index.html; exec httpd -f -p 8080 -h /w"
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*SANDBOX, "run", "--detach", "example.com/busybox", "--net=default",
                               "--exec", f"/bin/sh -c '{cmd}'"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    uuids = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"sandbox run failed: {err.strip()}")
        uuids.append(out.strip().splitlines()[-1])
    started = time.perf_counter() - t0
    ips = {u: pod.status(u)["networks"][0]["ips"][0].split("/")[0] for u in uuids}
    node = pod.node_name()
    answered = sum(http_get(node, ip, 8080).strip() == f"pod-{u[:8]}" for u, ip in ips.items())
    reached = time.perf_counter() - t0
    t1 = time.perf_counter()
    for u in uuids:
        pod.stop(u)
    pod.gc(grace=0)
    return {"pods": n, "distinct": len(set(ips.values())), "answered": answered,
            "started_s": started, "reached_s": reached, "stopped_s": time.perf_counter() - t1}


def sample(state: Path, uuids: list[str]) -> dict[str, int]:
    from sandbox._sys import mountinfo
    from sandbox.net import netns
    from sandbox.pod import stage0 as pod

    def rules(ns: str | None) -> int:
        argv = ["iptables", "-w", "-t", "nat", "-S"]
        cp = (netns.run(ns, argv, capture_output=True, text=True) if ns
              else subprocess.run(argv, capture_output=True, text=True))
        return len(cp.stdout.splitlines())
    node = pod.node_name(state)
    handles = {node} | {pod.netns_name(u) for u in uuids}
    points = mountinfo.mount_points()
    return {"fds": len(os.listdir("/proc/self/fd")),
            "mounts": len(mountinfo.below(state)) + len({f"/run/netns/{h}" for h in handles} & points),
            "netns handles": len(handles & set(os.listdir("/run/netns"))),
            "state files": sum(len(f) for _, _, f in os.walk(state)),
            "host iptables rules": rules(None),
            "node iptables rules": rules(node) if netns.exists(node) else 0}


def cycles(n: int, state: Path) -> dict:
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    store = Store()
    witness = pod.run(store, ["example.com/busybox"], net=["default"], detach=True,
                      exec_={0: ["/bin/sleep", "3600"]})
    uuids, samples, times = [witness.uuid], [], []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            p = pod.prepare(store, ["example.com/busybox"], net=["default"],
                            exec_={0: ["/bin/sh", "-c", "exit 3"]})
            uuids.append(p.uuid)
            if pod.run_prepared(p.uuid) != 3:
                raise SystemExit(f"pod {p.uuid} did not exit with 3: {pod.status(p.uuid)}")
            pod.remove(p.uuid)
            times.append(time.perf_counter() - t0)
            samples.append(sample(state, uuids))
    finally:
        pod.stop(witness.uuid)
        pod.gc(grace=0)
    return {"cycles": n, "first": samples[0], "last": samples[-1],
            "max": {k: max(s[k] for s in samples) for k in samples[0]},
            "median_ms": statistics.median(times) * 1000}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--at-once", type=int, default=32)
    ap.add_argument("--cycles", type=int, default=200)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_load needs root", file=sys.stderr)
        return 2
    from _hygiene import keep_var_lib_cni, private_state
    with private_state(), keep_var_lib_cni():
        state = Path(os.environ["SANDBOX_DIR"])
        from sandbox.image import catalog
        from sandbox.image.store import Store
        with tempfile.TemporaryDirectory(prefix="sbx-bench-load-acis-") as out:
            acis = catalog.build(Path(out), allow_download=False, cache_dir=Path(out) / "cache",
                                 progress=False)
            Store().import_aci(acis["example.com/busybox"])
        print(f"load: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
        if args.at_once:
            r = at_once(args.at_once)
            print(f"1. {r['pods']} pods at once on the default network: all started after "
                  f"{r['started_s']:.1f} s, {r['distinct']} distinct addresses, {r['answered']} "
                  f"answered at their address with their name after {r['reached_s']:.1f} s; "
                  f"stopped and collected in {r['stopped_s']:.1f} s")
        if args.cycles:
            r = cycles(args.cycles, state)
            print(f"2. {r['cycles']} run/rm cycles (default network, one process), median "
                  f"{r['median_ms']:.0f} ms a cycle")
            for k in r["first"]:
                grew = r["last"][k] - r["first"][k]
                print(f"   {k:22} after cycle 1: {r['first'][k]:5}   after cycle {r['cycles']}: "
                      f"{r['last'][k]:5}   (max {r['max'][k]}; {'+' if grew > 0 else ''}{grew})")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
