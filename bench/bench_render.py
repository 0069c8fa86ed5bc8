"""Rendering speed: cold render, warm render (tree-store hit) and the per-execution clean copy
(overlay vs plain copy), for rootfs of 10, 100 and 1000 MiB, side by side with public tools.

For each size, an app image depends on a base image holding the data (4 MiB files plus 200
small ones, uncompressed ACIs so building stays cheap). Measured:

* cold render: ``treestore.render_image`` (resolve, extract both layers with the whitelist and
  trace bookkeeping, hash the tree, rename into the tree store) vs the spec's "simplest
  implementation" with GNU tar: ``tar -xf base.aci; tar -xf app.aci`` into an empty directory.
* warm render: the same call again: a tree-store hit (goal: <= 50 ms whatever the size).
* clean copy per execution: ``treestore.clean_copy`` with an overlay mount vs with a plain copy
  (which is ``cp -a``), each created and closed; plus ``cp -a`` alone as the reference.

Needs root (overlay mounts). Numbers are with a warm page cache (the machine is shared; caches
are not dropped). Run: ``.venv/bin/python bench/bench_render.py [--sizes 10,100,1000]``
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.image import aci  # noqa: E402
from sandbox.image.store import Store  # noqa: E402
from sandbox.render import treestore

CHUNK = 4 << 20


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best(fn, runs: int) -> float:
    return min(timed(fn) for _ in range(runs))


def manifest(name: str, deps: list[str] = ()) -> str:
    return json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                       "labels": [{"name": "version", "value": "1.0.0"}],
                       "dependencies": [{"imageName": d} for d in deps]})


def make_images(work: Path, mib: int) -> tuple[Path, Path]:
    block = os.urandom(1 << 20)
    base = work / f"base-{mib}"
    data = base / "rootfs" / "data"
    data.mkdir(parents=True)
    left = mib << 20
    i = 0
    while left > 0:
        n = min(CHUNK, left)
        with open(data / f"blob{i:04}", "wb") as f:
            f.write(i.to_bytes(8, "big"))
            for _ in range(n >> 20):
                f.write(block)
        left -= n
        i += 1
    etc = base / "rootfs" / "etc"
    etc.mkdir()
    for j in range(200):
        (etc / f"conf{j:03}").write_text(f"setting {j}\n")
    (base / "manifest").write_text(manifest(f"bench.example.com/base{mib}"))
    app = work / f"app-{mib}"
    (app / "rootfs" / "opt").mkdir(parents=True)
    (app / "rootfs" / "opt" / "run").write_text("#!/bin/sh\necho run\n")
    (app / "rootfs" / "etc").mkdir()
    (app / "rootfs" / "etc" / "conf000").write_text("overridden\n")
    (app / "manifest").write_text(manifest(f"bench.example.com/app{mib}",
                                           [f"bench.example.com/base{mib}"]))
    base_aci, app_aci = work / f"base-{mib}.aci", work / f"app-{mib}.aci"
    aci.build(base, base_aci, compression="none", owner_root=True)
    aci.build(app, app_aci, compression="none", owner_root=True)
    shutil.rmtree(base)
    shutil.rmtree(app)
    return base_aci, app_aci


def bench_size(work: Path, mib: int, runs: int) -> dict[str, float]:
    store = Store()
    base_aci, app_aci = make_images(work, mib)
    store.import_aci(base_aci)
    store.import_aci(app_aci)
    ref = f"bench.example.com/app{mib}"
    r: dict[str, float] = {}

    def tar_reference() -> None:
        d = work / f"tar-{mib}"
        d.mkdir()
        subprocess.run(["tar", "-xf", str(base_aci), "-C", str(d)], check=True, stderr=subprocess.DEVNULL)
        subprocess.run(["tar", "-xf", str(app_aci), "-C", str(d)], check=True, stderr=subprocess.DEVNULL)
        shutil.rmtree(d)

    r["tar"] = timed(tar_reference)
    tree = None

    def cold() -> None:
        nonlocal tree
        tree = treestore.render_image(store, ref)
        assert not tree.hit

    r["cold"] = timed(cold)
    assert tree is not None
    r["hash"] = timed(lambda: treestore.tree_index(tree.rootfs))
    r["warm"] = best(lambda: treestore.render_image(store, ref), max(runs, 10))

    def copy(overlay: bool) -> None:
        with treestore.clean_copy(tree, overlay=overlay) as c:
            assert c.mode == ("overlay" if overlay else "copy")
            (c.path / "etc" / "conf001").write_text("a write\n")

    r["overlay"] = best(lambda: copy(True), max(runs, 5))
    r["copy"] = best(lambda: copy(False), runs)

    def cp_reference() -> None:
        d = work / f"cp-{mib}"
        d.mkdir()
        subprocess.run(["cp", "-a", f"{tree.rootfs}/.", str(d)], check=True)
        shutil.rmtree(d)

    r["cp"] = best(cp_reference, runs)
    base_aci.unlink()
    app_aci.unlink()
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000", help="rootfs sizes in MiB")
    ap.add_argument("--runs", type=int, default=3, help="repetitions of the slow measurements")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_render: needs root (overlay mounts).", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-render-"))
    os.environ["SANDBOX_DIR"] = str(work / "state")
    t0 = time.perf_counter()
    rows = []
    try:
        for mib in [int(s) for s in args.sizes.split(",")]:
            r = bench_size(work, mib, args.runs)
            rows.append((mib, r))
            print(f"{mib:5} MiB  cold {r['cold']:7.3f} s (tar -xf x2: {r['tar']:6.3f} s, "
                  f"ratio {r['cold'] / r['tar']:4.1f}; of which tree hash {r['hash']:6.3f} s)  "
                  f"warm {1000 * r['warm']:5.1f} ms  overlay {1000 * r['overlay']:6.1f} ms  "
                  f"copy {r['copy']:6.3f} s (cp -a: {r['cp']:6.3f} s)", flush=True)
    finally:
        treestore.close_all()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| rootfs | cold render | tar -xf ×2 | cold/tar | warm (tree-store hit) | overlay copy | "
          "plain copy | cp -a | copy/overlay |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mib, r in rows:
        print(f"| {mib} MiB | {r['cold']:.2f} s | {r['tar']:.2f} s | {r['cold'] / r['tar']:.1f}× | "
              f"{1000 * r['warm']:.1f} ms | {1000 * r['overlay']:.1f} ms | {r['copy']:.2f} s | "
              f"{r['cp']:.2f} s | {r['copy'] / r['overlay']:.0f}× |")
    warm_ok = all(r["warm"] <= 0.050 for _, r in rows)
    flat = rows[-1][1]["overlay"] / rows[0][1]["overlay"] if len(rows) > 1 else 1.0
    print(f"\nwarm render goal (<= 50 ms at every size): {'met' if warm_ok else 'NOT met'}; "
          f"overlay copy {rows[-1][0]} MiB / {rows[0][0]} MiB = {flat:.1f}× (flat = ~1×); "
          f"total bench time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
