"""CNI speed: our plugins vs the upstream Go plugins (Debian's containernetworking-plugins),
both driven by the kit's runtime on the same configuration, each in a node netns of its own.

1. ADD+DEL latency of one container (bridge + host-local, isGateway, ipMasq), median over
   ``--repeat`` rounds, ours vs upstream (goal: ours <= 1.5x upstream). The time spent inside
   the plugin execs is shown next to the runtime's total, so the runtime's own overhead is visible.
2. Per-ADD cost as a /24 fills up: the median ADD time of the ADDs that bring the network to 10,
   100 and 250 containers (goal: flat, i.e. ratio 250/10 close to 1).

Needs root. Nothing leaves the node namespaces; everything is removed at the end.
Run: ``.venv/bin/python bench/bench_cni.py [--repeat 10] [--fill 10,100,250] [--only ours|upstream]``
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.net import netns  # noqa: E402
from sandbox.net.cni import CniError, Runtime  # noqa: E402

UPSTREAM = "/usr/lib/cni"
WINDOW = 5  # ADDs per checkpoint


def conf(subnet: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "sbxbench", "type": "bridge", "bridge": "sbxbench0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}]}}


def make_runtime(session: netns.Session, work: Path, tag: str, cni_path: str, subnet: str) -> Runtime:
    d = work / tag
    (d / "conf").mkdir(parents=True)
    (d / "conf" / "10-sbxbench.conf").write_text(json.dumps(conf(subnet)))
    return Runtime(conf_dir=d / "conf", cni_path=cni_path, cache_dir=d / "cache",
                   node=session.node(), plugin_state_dir=d / "state")


def ms(t: float) -> float:
    return round(t * 1000, 1)


def latency(session: netns.Session, work: Path, sets: dict[str, str], repeat: int) -> dict:
    rts = {k: make_runtime(session, work, f"lat-{k}", p, "10.200.0.0/24") for k, p in sets.items()}
    ctrs = {k: session.create() for k in sets}
    out: dict[str, dict[str, list[float]]] = {k: {"add": [], "del": [], "exec": []} for k in sets}
    for k, rt in rts.items():  # warm-up: bridge creation, page cache, launcher compile
        rt.add("sbxbench", ctrs[k]); rt.delete("sbxbench", ctrs[k])
    for _ in range(repeat):
        for k, rt in rts.items():  # alternate, so background load hits both alike
            rt.calls.clear()
            t0 = time.perf_counter(); rt.add("sbxbench", ctrs[k]); t1 = time.perf_counter()
            rt.delete("sbxbench", ctrs[k]); t2 = time.perf_counter()
            out[k]["add"].append(t1 - t0); out[k]["del"].append(t2 - t1)
            out[k]["exec"].append(sum(c.ms for c in rt.calls) / 1000)
    return {k: {"add_ms": ms(statistics.median(v["add"])), "del_ms": ms(statistics.median(v["del"])),
                "add_del_ms": ms(statistics.median([a + d for a, d in zip(v["add"], v["del"])])),
                "plugin_exec_ms": ms(statistics.median(v["exec"]))} for k, v in out.items()}


def fill(session: netns.Session, work: Path, tag: str, cni_path: str, checkpoints: list[int]) -> dict:
    rt = make_runtime(session, work, f"fill-{tag}", cni_path, "10.201.0.0/24")
    times: list[float] = []
    for i in range(max(checkpoints)):
        c = session.create()
        t0 = time.perf_counter()
        try:
            rt.add("sbxbench", c)
        except CniError as e:  # report it (with the plugin's stderr) instead of a traceback
            print(f"  {tag}: ADD #{i + 1} failed: {e}\n  plugin stderr: {e.stderr.strip()[-800:]}",
                  file=sys.stderr)
            return {n: ms(statistics.median(times[n - WINDOW:n])) for n in checkpoints
                    if n <= len(times)}
        times.append(time.perf_counter() - t0)
        if (i + 1) % 50 == 0:
            print(f"  {tag}: {i + 1} containers", file=sys.stderr, flush=True)
    return {n: ms(statistics.median(times[n - WINDOW:n])) for n in checkpoints}


def main() -> int:
    from _hygiene import keep_var_lib_cni, private_state
    with private_state(), keep_var_lib_cni():
        return _main()


def _main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--fill", default="10,100,250", help="checkpoints on one /24 (max 253)")
    ap.add_argument("--only", choices=["ours", "upstream"], help="measure one plugin set")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    a = ap.parse_args()
    from sandbox.net.plugins import plugin_dir

    sets = {"upstream": UPSTREAM, "ours": str(plugin_dir())}
    if a.only:
        sets = {a.only: sets[a.only]}
    checkpoints = [int(x) for x in a.fill.split(",") if x]
    session = netns.Session()
    work = session.tmpdir("sbx-bench-cni-")
    report: dict = {}
    try:
        print(f"== ADD+DEL of one container, median of {a.repeat} (bridge+host-local, ipMasq)")
        report["latency"] = lat = latency(session, work, sets, a.repeat)
        for k, v in lat.items():
            print(f"  {k:9} ADD {v['add_ms']:7.1f} ms   DEL {v['del_ms']:7.1f} ms   "
                  f"ADD+DEL {v['add_del_ms']:7.1f} ms   (inside plugin execs {v['plugin_exec_ms']:.1f} ms)")
        if len(lat) == 2:
            r = lat["ours"]["add_del_ms"] / lat["upstream"]["add_del_ms"]
            report["ratio_ours_vs_upstream"] = round(r, 2)
            print(f"  ours / upstream = {r:.2f}x   (goal <= 1.5x: {'met' if r <= 1.5 else 'NOT met'})")
        print(f"== per-ADD cost as one /24 fills (median of the {WINDOW} ADDs before each mark)")
        report["fill"] = {}
        for k, p in sets.items():
            f = report["fill"][k] = fill(session, work, k, p, checkpoints)
            flat = (f"{checkpoints[-1]}/{checkpoints[0]} = {f[checkpoints[-1]] / f[checkpoints[0]]:.2f}x"
                    if checkpoints[-1] in f and checkpoints[0] in f else "(incomplete)")
            print(f"  {k:9} " + "   ".join(f"{n:3} ctrs: {v:7.1f} ms" for n, v in f.items())
                  + f"   {flat}")
        if a.json:
            print(json.dumps(report, indent=2))
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
