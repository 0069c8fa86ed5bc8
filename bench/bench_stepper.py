"""The stepper's cost, on the kit's own CNI plugins (bridge + host-local, isGateway, ipMasq), in
a node netns of its own:

1. Recording: ADD+DEL of one container with a snapshotting ``Steps`` (the kernel film: dumps,
   the listener thread, the plugins' own step lines) vs the same ADD+DEL with no steps, rounds
   alternated, medians (goal: recording adds <= 20 %).
2. Redrawing: rendering one step of the recorded ADD from scratch — the kernel state replayed
   from the film, the topology drawn, **graphviz's dot run to SVG**, the sequence diagram and the
   detail — over every step of the ADD, median and max (goal: median <= 150 ms).

Needs root. Nothing leaves the node namespaces; everything is removed at the end.
Run: ``.venv/bin/python bench/bench_stepper.py [--repeat 15]``
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _hygiene import keep_var_lib_cni, private_state  # noqa: E402

from sandbox.net import netns  # noqa: E402
from sandbox.net.cni import Runtime  # noqa: E402
from sandbox.net.plugins import plugin_dir  # noqa: E402
from sandbox.steps import Steps  # noqa: E402


def conf() -> dict:
    return {"cniVersion": "1.0.0", "name": "sbxstep", "type": "bridge", "bridge": "sbxstep0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": "host-local", "subnet": "10.202.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}}


def ms(t: float) -> float:
    return round(t * 1000, 1)


def run(repeat: int) -> dict:
    from sandbox.viz.stepper import Stepper
    session = netns.Session()
    try:
        work = session.tmpdir("sbx-bench-stepper-")
        (work / "conf").mkdir()
        (work / "conf" / "10-sbxstep.conf").write_text(json.dumps(conf()))
        rt = Runtime(conf_dir=work / "conf", cni_path=str(plugin_dir()), cache_dir=work / "cache",
                     node=session.node(), plugin_state_dir=work / "state")
        c = session.create()
        # warm-up: the bridge exists afterwards in both cases, pyroute2 and the launchers are loaded
        rt.add("sbxstep", c, steps=Steps(snapshots=True))
        rt.delete("sbxstep", c, steps=Steps(snapshots=True))
        plain: list[float] = []
        filmed: list[float] = []
        last = Steps()
        for _ in range(repeat):          # alternate, so background load hits both alike
            t0 = time.perf_counter()
            rt.add("sbxstep", c)
            rt.delete("sbxstep", c)
            plain.append(time.perf_counter() - t0)
            steps = Steps(snapshots=True)
            t0 = time.perf_counter()
            rt.add("sbxstep", c, steps=steps)
            rt.delete("sbxstep", c, steps=steps)
            filmed.append(time.perf_counter() - t0)
            last = steps
        # redraw every step of the last recorded ADD, each from nothing (a fresh Stepper: no cache)
        add_steps = Steps(snapshots=True)
        rt.add("sbxstep", c, steps=add_steps)
        rt.delete("sbxstep", c)
        draws = []
        for k in range(1, len(add_steps) + 1):
            fresh = Stepper(add_steps, static=True)
            t0 = time.perf_counter()
            fresh.render(k)
            draws.append(time.perf_counter() - t0)
        film = next(s.after["film"] for s in add_steps if s.after)
        p, f = statistics.median(plain), statistics.median(filmed)
        return {"add_del_ms": ms(p), "add_del_recorded_ms": ms(f),
                "recording_overhead_pct": round((f / p - 1) * 100, 1),
                "steps_per_add_del": len(last), "kernel_notifications_per_add": len(film.kernel.events),
                "redraw_median_ms": ms(statistics.median(draws)), "redraw_max_ms": ms(max(draws)),
                "steps_redrawn": len(draws)}
    finally:
        session.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=25)
    args = ap.parse_args()
    with private_state(), keep_var_lib_cni():
        r = run(args.repeat)
    print(json.dumps(r, indent=2))
    print(f"\nrecording: ADD+DEL {r['add_del_ms']} ms -> {r['add_del_recorded_ms']} ms with the "
          f"kernel film = +{r['recording_overhead_pct']} % (goal <= 20 %)")
    print(f"redrawing one step of a recorded ADD (dot included): median {r['redraw_median_ms']} ms, "
          f"max {r['redraw_max_ms']} ms over {r['steps_redrawn']} steps (goal: median <= 150 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
