"""Image-format speed, side by side with the reference tools in one run.

1. Image ID throughput on a 256 MiB uncompressed ACI: ``sandbox image id`` vs ``sha512sum``
   (goal: >= 0.9x sha512sum's MiB/s). The CLI's time includes Python start-up and the import of
   every area's commands; the in-process ``aci.image_id`` is shown too.
2. Build time on one layout: ``sandbox image build`` vs ``actool build`` (both gzip, the
   default of each; goal: <= 1.0x actool's time).

Each command runs several times, alternating, and the median is reported, as wall time and as
CPU time (user+sys of the child, from wait4): the machine is shared, so CPU time is the steadier
number. Run: ``.venv/bin/python bench/bench_image.py [--mib 256] [--reps 5]``
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import config
from sandbox.image import aci  # noqa: E402

SANDBOX = str(ROOT / ".venv" / "bin" / "sandbox")


def run(cmd: list[str]) -> tuple[float, float, bytes]:
    """(wall seconds, child CPU seconds, stdout) of one command."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read() if p.stdout else b""
    err = p.stderr.read() if p.stderr else b""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.decode()[-500:]}")
    return wall, ru.ru_utime + ru.ru_stime, out


def make_layout(d: Path, mib: int) -> None:
    """Half random (incompressible) and half text-like (compressible) 4 MiB files, plus 300
    small files and a few symlinks: something like a real rootfs."""
    rootfs = d / "rootfs"
    rng = random.Random(42)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    for i in range(max(1, mib // 4)):
        sub = rootfs / "usr" / "lib" / f"pkg{i % 8}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 2 == 0:
            data = os.urandom(4 << 20)
        else:
            text = b" ".join(rng.choice(words) for _ in range(120_000)) + b"\n"
            data = (text * (((4 << 20) // len(text)) + 1))[:4 << 20]
        (sub / f"blob{i}.bin").write_bytes(data)
    etc = rootfs / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    for i in range(300):
        (etc / f"conf{i}.txt").write_text(f"setting{i} = {rng.random()}\n" * 20)
    (rootfs / "bin").mkdir(exist_ok=True)
    for i in range(20):
        os.symlink(f"/usr/lib/pkg0/blob0.bin", rootfs / "bin" / f"link{i}")
    (d / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/bench",
        "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}]}))


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256, help="size of the layout / ACI (MiB)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    actool = config.tool_path("actool")
    if actool is None:
        print("actool is not built; run `bash provision/build-tools.sh` first.", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-image-"))
    try:
        layout = work / "layout"
        print(f"making a {args.mib} MiB layout in {work} ...", flush=True)
        make_layout(layout, args.mib)
        big = work / "big.aci"
        aci.build(layout, big, compression="none")
        size_mib = big.stat().st_size / (1 << 20)

        # 1. image ID vs sha512sum
        run(["sha512sum", str(big)])    # warm the page cache once
        ids = {"sha512sum": ([], []), "sandbox image id": ([], [])}
        inproc: list[float] = []
        ref = None
        for _ in range(args.reps):
            w, c, out = run(["sha512sum", str(big)])
            ids["sha512sum"][0].append(w)
            ids["sha512sum"][1].append(c)
            ref = "sha512-" + out.split()[0].decode()
            w, c, out = run([SANDBOX, "image", "id", str(big)])
            ids["sandbox image id"][0].append(w)
            ids["sandbox image id"][1].append(c)
            assert out.decode().strip() == ref, "the two IDs differ!"
            t0 = time.perf_counter()
            assert aci.image_id(big) == ref
            inproc.append(time.perf_counter() - t0)
        w0, c0 = med(ids["sha512sum"][0]), med(ids["sha512sum"][1])
        w1, c1 = med(ids["sandbox image id"][0]), med(ids["sandbox image id"][1])
        startup = [run([SANDBOX, "--version"]) for _ in range(args.reps)]
        own = [run([sys.executable, "-c", "import sandbox.image.aci"]) for _ in range(args.reps)]
        print()
        print(f"image ID of a {size_mib:.0f} MiB uncompressed ACI, median of {args.reps} "
              "(MiB/s, higher is better)")
        print(f"  {'':28} {'wall s':>7} {'MiB/s':>8} {'cpu s':>7} {'MiB/cpu-s':>10}")
        print(f"  {'sha512sum':28} {w0:7.3f} {size_mib / w0:8.0f} {c0:7.3f} {size_mib / c0:10.0f}")
        print(f"  {'sandbox image id (CLI)':28} {w1:7.3f} {size_mib / w1:8.0f} {c1:7.3f} {size_mib / c1:10.0f}")
        wi = med(inproc)
        print(f"  {'aci.image_id (in-process)':28} {wi:7.3f} {size_mib / wi:8.0f}")
        print(f"  CLI start-up alone (sandbox --version, imports every area's commands): "
              f"{med([x[0] for x in startup]):.3f} s wall, {med([x[1] for x in startup]):.3f} s cpu; "
              f"python + sandbox.image.aci alone: {med([x[1] for x in own]):.3f} s cpu")
        print(f"  ratio vs sha512sum throughput: CLI {w0 / w1:.2f}x wall, {c0 / c1:.2f}x cpu; "
              f"in-process {w0 / wi:.2f}x wall   (goal >= 0.9x)")

        # 2. build vs actool build (gzip both)
        builds = {"actool build": ([], []), "sandbox image build": ([], [])}
        ours, theirs = work / "ours.aci", work / "theirs.aci"
        for _ in range(args.reps):
            w, c, _ = run([str(actool), "build", "--overwrite", str(layout), str(theirs)])
            builds["actool build"][0].append(w)
            builds["actool build"][1].append(c)
            w, c, _ = run([SANDBOX, "image", "build", "--overwrite", "--compression", "gzip",
                           str(layout), str(ours)])
            builds["sandbox image build"][0].append(w)
            builds["sandbox image build"][1].append(c)
        assert aci.validate(ours) == [] and aci.validate(theirs) == []
        a_w, a_c = med(builds["actool build"][0]), med(builds["actool build"][1])
        s_w, s_c = med(builds["sandbox image build"][0]), med(builds["sandbox image build"][1])
        print()
        print(f"build of the same {args.mib} MiB layout, gzip, median of {args.reps} (lower is better)")
        print(f"  {'':22} {'wall s':>7} {'cpu s':>7} {'size MiB':>9}")
        print(f"  {'actool build':22} {a_w:7.3f} {a_c:7.3f} {theirs.stat().st_size / (1 << 20):9.1f}")
        print(f"  {'sandbox image build':22} {s_w:7.3f} {s_c:7.3f} {ours.stat().st_size / (1 << 20):9.1f}")
        print(f"  time ratio sandbox/actool: {s_w / a_w:.2f}x wall, {s_c / a_c:.2f}x cpu   (goal <= 1.0x)")
        print()
        print(json.dumps({"bench": "image", "mib": round(size_mib),
                          "id_ratio_wall": round(w0 / w1, 3), "id_ratio_cpu": round(c0 / c1, 3),
                          "id_ratio_inprocess": round(w0 / wi, 3),
                          "build_ratio_wall": round(s_w / a_w, 3),
                          "build_ratio_cpu": round(s_c / a_c, 3)}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
