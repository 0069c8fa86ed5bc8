"""Pod speed: the kit's runtime vs runc on the same rootfs, in one run.

1. start-to-exit of ``/bin/true`` in a busybox pod, each a whole process as a user types it, vs
   ``runc run`` of the same rendered rootfs as an OCI bundle (``sandbox.oci.make_bundle``,
   process.args ``["/bin/true"]``); median of ``--repeat`` rounds, alternating:

   * ``sandbox run-prepared UUID`` of a pod made by ``sandbox prepare`` (--net=none): the like
     for like — runc's bundle is made beforehand too (rootfs rendered, config written), and
     ``runc run`` creates the container's namespaces, runs it, waits and deletes it (goal:
     <= 1.6x, issue 15);
   * ``sandbox run example.com/busybox --net=none --exec /bin/true``: the same plus what runc
     never does — resolve the image in the store, read and validate its manifest, find its
     rendered tree and write the pod's plan;
   * ``run-prepared`` with ``SANDBOX_NO_FORK=1`` (every stage a fresh Python interpreter, as
     stage0 does in a process that has threads, e.g. a Jupyter kernel).

   Where the time goes is shown from the timestamps the runtime records (run.json, stage1.pid,
   the app's status.json), next to the floor of starting Python itself.
2. the seed pod's start time: ``sandbox run --detach`` of reduce-worker, worker-backup and
   reduce-worker-register until the command returns (every app started) and until the register
   app has registered with the reduce-worker over 127.0.0.1 (exit 0).

Needs root. State goes to $SANDBOX_DIR (bench/run.py gives a temporary one; else a temp dir);
every pod is stopped and gc'd, every runc container deleted, temp dirs removed — also on failure.
Run: ``.venv/bin/python bench/bench_pod.py [--repeat 15] [--seed-repeat 3]``
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = [sys.executable, "-m", "sandbox"]
SEED = ["example.com/reduce-worker", "example.com/worker-backup",
        "example.com/reduce-worker-register"]


def ms(t: float) -> str:
    return f"{t * 1000:7.1f} ms"


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    return time.perf_counter() - t0, p


def pod_breakdown(uuid: str, t0: float, t1: float) -> dict[str, float]:
    """Phases of one finished pod from the files the runtime writes (wall-clock timestamps);
    ``t0``/``t1``: when the command was started and when it returned."""
    from sandbox.pod import stage0 as pod
    _, d = pod.find(uuid)
    run = json.loads((d / "run.json").read_text())
    app = json.loads(next((d / "apps").glob("*/status.json")).read_text())
    s1 = (d / "stage1.pid").stat().st_mtime
    return {"CLI start → supervisor owns the pod": run["started"] - t0,
            "supervisor → PID 1 (netns, lo, metadata socket)": s1 - run["started"],
            "PID 1 → app runner (hostname, overlay)": app["started"] - s1,
            "runner → exec (mounts, pivot_root, caps)": app["mainStarted"] - app["started"],
            "app (exec /bin/true … exit)": app["finished"] - app["mainStarted"],
            "teardown (netns, cgroups, state)": run["finished"] - app["finished"],
            "CLI notices, exits": t1 - run["finished"]}


def bench_true(repeat: int, work: Path) -> dict:
    from sandbox import oci
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    bundle = oci.make_bundle(Store(), "example.com/busybox", work / "bundle")
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(cfg, indent=2))
    times: dict[str, list[float]] = {"prepared": [], "run": [], "nofork": [], "runc": []}
    phases = []
    names = []

    def prepared() -> str:
        p = subprocess.run([*SANDBOX, "prepare", "example.com/busybox", "--net=none", "--exec",
                            "/bin/true"], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise SystemExit(f"sandbox prepare failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout.strip()

    def ours(key: str, argv: list[str], env: dict | None = None) -> tuple[float, float, float]:
        w0 = time.time()
        t, p = timed(argv, env=env)
        w1 = time.time()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(argv[2:])} failed ({p.returncode}): {p.stderr.strip()}")
        if i:
            times[key].append(t)
        return t, w0, w1
    try:
        for i in range(repeat + 1):          # round 0 warms up (tree store, page cache)
            uuid = prepared()
            _, w0, w1 = ours("prepared", [*SANDBOX, "run-prepared", uuid])
            if i:
                phases.append(pod_breakdown(uuid, w0, w1))
            pod.remove(uuid)
            t, p = timed([*SANDBOX, "run", "example.com/busybox", "--net=none", "--exec", "/bin/true"])
            if p.returncode != 0:
                raise SystemExit(f"sandbox run failed ({p.returncode}): {p.stderr.strip()}")
            if i:
                times["run"].append(t)
            pod.remove(next(line.split()[1] for line in p.stderr.splitlines() if line.startswith("pod ")))
            uuid = prepared()
            ours("nofork", [*SANDBOX, "run-prepared", uuid], env={**os.environ, "SANDBOX_NO_FORK": "1"})
            pod.remove(uuid)
            name = f"sbx-bench-{os.getpid()}-{i}"
            names.append(name)
            t, p = timed(["runc", "run", "--bundle", str(bundle), name], stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                raise SystemExit(f"runc run failed ({p.returncode}): {p.stderr.strip()}")
            if i:
                times["runc"].append(t)
            subprocess.run(["runc", "delete", "-f", name], capture_output=True)
    finally:
        for name in names:
            subprocess.run(["runc", "delete", "-f", name], capture_output=True)
    floor = {"python -c pass": min(timed([sys.executable, "-c", "pass"])[0] for _ in range(5)),
             "sandbox --version (every area's parser)": min(
                 timed([*SANDBOX, "--version"])[0] for _ in range(5)),
             # what `run-prepared UUID` imports (its arguments are read without argparse)
             "imports of run-prepared (CLI, stage0, stage1)": min(
                 timed([sys.executable, "-c", "from sandbox import cli; from sandbox.cli import pod; "
                        "from sandbox.pod import cgroups, stage0, metadata, stage1, supervisor; "
                        "from sandbox._sys import proc; from sandbox.net import netns; "
                        "pod.quick_args(['run-prepared', 'x'])"])[0] for _ in range(5))}
    med = {k: statistics.median(ph[k] for ph in phases) for k in phases[0]}
    return {**times, "phases": med, "floor": floor}


def bench_seed(repeat: int) -> dict:
    from sandbox.pod import stage0 as pod
    started, registered = [], []
    for i in range(repeat + 1):     # round 0 warms up (the node netns and bridge, the plugins' bytecode)
        t0 = time.perf_counter()
        p = subprocess.run([*SANDBOX, "run", "--detach", *SEED], capture_output=True, text=True,
                           timeout=120)
        t1 = time.perf_counter()
        if p.returncode != 0:
            raise SystemExit(f"sandbox run --detach failed: {p.stderr.strip()}")
        uuid = p.stdout.strip().splitlines()[-1]
        try:
            while True:
                a = {x["name"]: x for x in pod.status(uuid)["apps"]}["reduce-worker-register"]
                if a.get("exitCode") is not None or time.perf_counter() - t0 > 60:
                    break
                time.sleep(0.01)
            t2 = time.perf_counter()
            if a.get("exitCode") != 0:
                raise SystemExit(f"reduce-worker-register did not register: {pod.logs(uuid)}")
            if i:
                started.append(t1 - t0)
                registered.append(t2 - t0)
        finally:
            pod.stop(uuid, timeout=5)
            pod.remove(uuid)
    return {"started": started, "registered": registered}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--seed-repeat", type=int, default=3, help="0: leave part 2 out")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.seed_repeat < 0:
        ap.error("--repeat must be at least 1 and --seed-repeat at least 0")
    if os.geteuid() != 0:
        print("bench_pod: needs root (namespaces, mounts).", file=sys.stderr)
        return 2
    if shutil.which("runc") is None:
        print("bench_pod: runc is not installed (Debian package runc).", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-pod-"))
    # Python processes (CLI, supervisor, stage1) start with warm bytecode, as on a learner's
    # machine, even where PYTHONDONTWRITEBYTECODE is set: the cache goes to the temp dir.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    own_state = "SANDBOX_DIR" not in os.environ
    if own_state:
        os.environ["SANDBOX_DIR"] = str(work / "state")
    from sandbox.image import catalog
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    try:
        catalog.build(work / "catalog", import_to=Store(), progress=False)
        r = bench_true(args.repeat, work)
        s = bench_seed(args.seed_repeat) if args.seed_repeat else None
    finally:
        for p in pod.list_pods():
            if p["state"] == "run":
                pod.stop(p["uuid"], timeout=5)
        pod.gc(grace=0)
        shutil.rmtree(work, ignore_errors=True)
        if own_state:
            os.environ.pop("SANDBOX_DIR", None)
    med = {k: statistics.median(r[k]) for k in ("prepared", "run", "nofork", "runc")}
    spread = lambda k: f"(min {ms(min(r[k])).strip()}, max {ms(max(r[k])).strip()})"  # noqa: E731
    print(f"1. /bin/true start-to-exit, median of {args.repeat} rounds (alternating)")
    print(f"   sandbox run-prepared UUID (--net=none)       {ms(med['prepared'])}   {spread('prepared')}")
    print(f"   sandbox run IMAGE --net=none --exec …        {ms(med['run'])}   {spread('run')}")
    print(f"   run-prepared, SANDBOX_NO_FORK=1              {ms(med['nofork'])}   {spread('nofork')}")
    print(f"   runc run (same rootfs, OCI bundle)           {ms(med['runc'])}   {spread('runc')}")
    ratio = med["prepared"] / med["runc"]
    print(f"   ratio run-prepared / runc run: {ratio:.2f}x   (goal <= 1.6x: "
          f"{'met' if ratio <= 1.6 else 'NOT met'}; both start from a prepared rootfs and config)")
    print(f"   ratio run / runc run:          {med['run'] / med['runc']:.2f}x   (adds image "
          "resolution, manifest validation and the pod's plan)")
    print(f"   ratio without forking:         {med['nofork'] / med['runc']:.2f}x   (a fresh "
          "interpreter for the supervisor and for stage1)")
    print("   where run-prepared's time goes (median of the runtime's own timestamps):")
    for k, v in r["phases"].items():
        print(f"     {k:48} {ms(v)}")
    print("   the floor: starting Python")
    for k, v in r["floor"].items():
        print(f"     {k:48} {ms(v)}")
    if not args.seed_repeat:
        return 0
    print(f"2. seed pod (3 apps, --net=default), median of {args.seed_repeat}")
    print(f"   sandbox run --detach returned (all apps started)  {ms(statistics.median(s['started']))}")
    print(f"   … reduce-worker-register registered (exit 0)      {ms(statistics.median(s['registered']))}")
    print(f"   ratio seed-pod start / runc /bin/true: {statistics.median(s['started']) / med['runc']:.1f}x")
    return 0


if __name__ == "__main__":
    from _hygiene import keep_var_lib_cni
    with keep_var_lib_cni():
        rc = main(sys.argv[1:])
    sys.exit(rc)
