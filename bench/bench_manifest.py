#!/usr/bin/env python3
"""Manifest validation speed: sandbox.image.manifest vs actool 0.8.11 (appc's reference validator).

    .venv/bin/python bench/bench_manifest.py [--repeat 5] [--big 20000]

1. the corpus (tests/image/manifest_cases/cases.json, ~190 small manifests): ours validates each
   in-process; actool runs once per file (`actool validate --type=manifest F`), so its time
   includes process start-up, shown separately (`actool version`).
2. one big ImageManifest (N environment variables, N pathWhitelist entries, N/10 ports): here
   start-up is small next to the work, so the ratio compares the validators themselves.
Prints medians and ours/actool ratios (< 1 means we are faster).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "image"))

from sandbox.config import tool_path  # noqa: E402
from sandbox.image.manifest import ImageManifest, validate_json  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--big", type=int, default=20000, help="entries in the big manifest")
    args = ap.parse_args()
    actool = tool_path("actool")
    if actool is None:
        sys.exit("actool is missing: run `bash provision/bootstrap.sh` first")
    from test_manifest import CASES, build  # the corpus and its builder

    with tempfile.TemporaryDirectory(prefix="sbx-bench-manifest-") as tmp:
        files = []
        texts = []
        for i, case in enumerate(CASES.values()):
            text = build(case)
            f = Path(tmp) / f"{i}.json"
            f.write_text(text)
            files.append(f)
            texts.append(text)

        def ours_corpus() -> None:
            for text in texts:
                validate_json(text)

        def actool_corpus() -> None:
            for f in files:
                subprocess.run([str(actool), "validate", "--type=manifest", str(f)],
                               capture_output=True)

        startup = median_time(lambda: subprocess.run([str(actool), "version"], capture_output=True),
                              args.repeat * 4)
        t_ours = median_time(ours_corpus, args.repeat)
        t_actool = median_time(actool_corpus, args.repeat)
        n = len(texts)

        big = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/big",
               "app": {"exec": ["/bin/x"], "user": "0", "group": "0",
                       "environment": [{"name": f"VAR_{i}", "value": str(i)} for i in range(args.big)],
                       "ports": [{"name": f"p{i}", "port": 1 + i, "protocol": "tcp"}
                                 for i in range(min(args.big // 10, 65535))]},
               "pathWhitelist": [f"/usr/lib/f{i}" for i in range(args.big)]}
        big_text = json.dumps(big)
        bf = Path(tmp) / "big.json"
        bf.write_text(big_text)
        assert validate_json(big_text) == []
        t_big_ours = median_time(lambda: ImageManifest.from_json(big_text), args.repeat)
        t_big_actool = median_time(
            lambda: subprocess.run([str(actool), "validate", "--type=manifest", str(bf)], check=True,
                                   capture_output=True), args.repeat)

    print(f"{'what':52} {'ours':>10} {'actool':>10} {'ours/actool':>12}")
    print(f"{'corpus: ' + str(n) + ' manifests, per manifest (ms)':52} {t_ours / n * 1e3:10.3f} "
          f"{t_actool / n * 1e3:10.3f} {t_ours / t_actool:12.3f}")
    print(f"{'actool process start-up alone, `actool version` (ms)':52} {'':>10} {startup * 1e3:10.3f}")
    print(f"{f'big manifest ({len(big_text) // 1024} KiB, {args.big} env + {args.big} paths) (ms)':52} "
          f"{t_big_ours * 1e3:10.1f} {t_big_actool * 1e3:10.1f} {t_big_ours / t_big_actool:12.3f}")


if __name__ == "__main__":
    main()
