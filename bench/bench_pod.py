"""Pod speed: the kit's runtime vs runc on the same rootfs, in one run.

1. start-to-exit of ``/bin/true`` in a busybox pod — ``sandbox run example.com/busybox --net=none
   --exec /bin/true`` as a whole process (CLI start, prepare, supervisor, stage1, app, teardown) —
   vs ``runc run`` of the same rendered rootfs as an OCI bundle (``sandbox.oci.make_bundle``,
   process.args ``["/bin/true"]``); median of ``--repeat`` runs each, alternating (goal: <= 2x).
   Where the pod's time goes is shown from the timestamps the runtime records (run.json,
   stage1.pid, the app's status.json), next to the floor of starting Python itself.
2. the seed pod's start time: ``sandbox run --detach`` of reduce-worker, worker-backup and
   reduce-worker-register until the command returns (every app started) and until the register
   app has registered with the reduce-worker over 127.0.0.1 (exit 0).

Needs root. State goes to $SANDBOX_DIR (bench/run.py gives a temporary one; else a temp dir);
every pod is stopped and gc'd, every runc container deleted, temp dirs removed — also on failure.
Run: ``.venv/bin/python bench/bench_pod.py [--repeat 7] [--seed-repeat 3]``
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
    return f"{t * 1000:7.0f} ms"


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    return time.perf_counter() - t0, p


def pod_breakdown(uuid: str) -> dict[str, float]:
    """Phases of one finished pod from the files the runtime writes (wall-clock timestamps)."""
    from sandbox import pod
    _, d = pod.find(uuid)
    plan = json.loads((d / "plan.json").read_text())
    run = json.loads((d / "run.json").read_text())
    app = json.loads(next((d / "apps").glob("*/status.json")).read_text())
    s1 = (d / "stage1.pid").stat().st_mtime
    return {"prepared → supervisor running": run["started"] - plan["created"],
            "supervisor → stage1 PID 1 forked": s1 - run["started"],
            "PID 1 → app runner ready": app["mainStarted"] - s1,
            "app (exec /bin/true … exit)": app["finished"] - app["mainStarted"],
            "teardown (metadata, netns, cgroups)": run["finished"] - app["finished"]}


def bench_true(repeat: int, work: Path) -> dict:
    from sandbox import oci, pod
    from sandbox.store import Store
    bundle = oci.make_bundle(Store(), "example.com/busybox", work / "bundle")
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(cfg, indent=2))
    ours, theirs, phases = [], [], []
    argv = [*SANDBOX, "run", "example.com/busybox", "--net=none", "--exec", "/bin/true"]
    names = []
    try:
        for i in range(repeat + 1):          # round 0 warms up (tree store, page cache)
            t, p = timed(argv)
            if p.returncode != 0:
                raise SystemExit(f"sandbox run failed ({p.returncode}): {p.stderr.strip()}")
            uuid = next(line.split()[1] for line in p.stderr.splitlines() if line.startswith("pod "))
            if i:
                ours.append(t)
                phases.append(pod_breakdown(uuid))
            pod.remove(uuid)
            name = f"sbx-bench-{os.getpid()}-{i}"
            names.append(name)
            t, p = timed(["runc", "run", "--bundle", str(bundle), name], stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                raise SystemExit(f"runc run failed ({p.returncode}): {p.stderr.strip()}")
            if i:
                theirs.append(t)
            subprocess.run(["runc", "delete", "-f", name], capture_output=True)
    finally:
        for name in names:
            subprocess.run(["runc", "delete", "-f", name], capture_output=True)
    floor = {"python -c pass": min(timed([sys.executable, "-c", "pass"])[0] for _ in range(3)),
             "sandbox --version (CLI: every area's parser)": min(
                 timed([*SANDBOX, "--version"])[0] for _ in range(3)),
             "python -c 'import sandbox.pod'": min(
                 timed([sys.executable, "-c", "import sandbox.pod"])[0] for _ in range(3)),
             "python -c 'import sandbox.stage1'": min(
                 timed([sys.executable, "-c", "import sandbox.stage1"])[0] for _ in range(3))}
    med = {k: statistics.median(ph[k] for ph in phases) for k in phases[0]}
    return {"ours": ours, "runc": theirs, "phases": med, "floor": floor}


def bench_seed(repeat: int) -> dict:
    from sandbox import pod
    started, registered = [], []
    for _ in range(repeat):
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
            started.append(t1 - t0)
            registered.append(t2 - t0)
        finally:
            pod.stop(uuid, timeout=5)
            pod.remove(uuid)
    return {"started": started, "registered": registered}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed-repeat", type=int, default=3)
    args = ap.parse_args(argv)
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
    from sandbox import catalog, pod
    from sandbox.store import Store
    try:
        catalog.build(work / "catalog", import_to=Store(), progress=False)
        r = bench_true(args.repeat, work)
        s = bench_seed(args.seed_repeat)
    finally:
        for p in pod.list_pods():
            if p["state"] == "run":
                pod.stop(p["uuid"], timeout=5)
        pod.gc(grace=0)
        shutil.rmtree(work, ignore_errors=True)
        if own_state:
            os.environ.pop("SANDBOX_DIR", None)
    ours, theirs = statistics.median(r["ours"]), statistics.median(r["runc"])
    print(f"1. /bin/true start-to-exit, median of {args.repeat} (alternating)")
    print(f"   sandbox run --net=none --exec /bin/true  {ms(ours)}   "
          f"(min {ms(min(r['ours'])).strip()}, max {ms(max(r['ours'])).strip()})")
    print(f"   runc run (same rootfs, OCI bundle)       {ms(theirs)}   "
          f"(min {ms(min(r['runc'])).strip()}, max {ms(max(r['runc'])).strip()})")
    print(f"   ratio ours/runc: {ours / theirs:.1f}x   (goal <= 2x: "
          f"{'met' if ours <= 2 * theirs else 'NOT met'})")
    print("   where the pod's time goes (median of the runtime's own timestamps):")
    for k, v in r["phases"].items():
        print(f"     {k:38} {ms(v)}")
    rest = ours - sum(r["phases"].values())
    print(f"     {'CLI start + prepare + exit/polling':38} {ms(rest)}")
    print("   the floor: starting Python (3 processes per pod: CLI, supervisor, stage1)")
    for k, v in r["floor"].items():
        print(f"     {k:44} {ms(v)}")
    print(f"2. seed pod (3 apps, --net=default), median of {args.seed_repeat}")
    print(f"   sandbox run --detach returned (all apps started)  {ms(statistics.median(s['started']))}")
    print(f"   … reduce-worker-register registered (exit 0)      {ms(statistics.median(s['registered']))}")
    print(f"   ratio seed-pod start / runc /bin/true: {statistics.median(s['started']) / theirs:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
