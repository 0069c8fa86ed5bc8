"""Discovery and fetch speed, side by side with public tools, on loopback only.

1. discovery: ``sandbox.dist.discovery.discover`` vs ``actool discover`` (appc's reference client,
   built from Debian's sources), same server, same app string, N runs each.
2. fetch of a 100 MiB ACI over https from ``sandbox serve --tls``: ``sandbox.dist.fetch.fetch``
   (discover, signature first, trust check, download, verify, identity check, import into the
   store) vs the same work done by hand with public tools: ``curl`` for the discovery page, the
   signature and the image, then ``gpg --verify``.

Run: ``.venv/bin/python bench/bench_discovery.py [--mib 100] [--runs 20]``
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

from sandbox.config import tool_path  # noqa: E402
from sandbox.dist import discovery, fetch
from sandbox.dist.serve import DiscoveryServer  # noqa: E402
from sandbox.image import aci  # noqa: E402
from sandbox.trust import pgp
from sandbox.trust.truststore import TrustStore  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {"NO_PROXY": "*"}


def best(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_image(d: Path, mib: int, key) -> Path:
    os_, arch = discovery.default_os_arch()
    lay = d / "layout"
    (lay / "rootfs").mkdir(parents=True)
    with open(lay / "rootfs" / "blob", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    (lay / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "localhost/big",
        "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": os_},
                   {"name": "arch", "value": arch}]}))
    pub = d / "pub"
    pub.mkdir()
    out = pub / "big-1.0.0.aci"
    aci.build(lay, out, compression="none")
    shutil.rmtree(lay)
    (pub / "big-1.0.0.aci.asc").write_bytes(pgp.sign(out, key))
    (pub / "big.pub.asc").write_bytes(key.public().armored())
    return pub


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-disc-"))
    os.environ["SANDBOX_DIR"] = str(work / "state")
    try:
        key = pgp.generate_key("Bench <bench@example.com>", bits=3072)
        pub = make_image(work, args.mib, key)
        app = "localhost/big:1.0.0"

        # 1. discovery only, plain http (actool --insecure allows it), same server
        actool = tool_path("actool")
        with DiscoveryServer(pub) as srv:
            ours = best(lambda: discovery.discover(discovery.parse_app(app).with_platform_defaults(),
                                                   allow_http=True, port=srv.port), args.runs)
            print(f"discovery  sandbox: {ours * 1000:7.1f} ms (best of {args.runs})")
            if actool:
                ref = best(lambda: subprocess.run(
                    [str(actool), "discover", "--insecure", f"--port={srv.port}", app],
                    check=True, capture_output=True, env=ENV), args.runs)
                print(f"discovery  actool:  {ref * 1000:7.1f} ms (best of {args.runs}, incl. process start)")
                print(f"discovery  ratio sandbox/actool: {ours / ref:.2f}")
            else:
                print("discovery  actool not built (run provision/bootstrap.sh); skipped")

        # 2. full fetch over https with the throwaway CA
        TrustStore().add("localhost/big", key.public().armored())
        gnupg = work / "gnupg"
        gnupg.mkdir(mode=0o700)
        subprocess.run(["gpg", "--homedir", str(gnupg), "--batch", "--import", str(pub / "big.pub.asc")],
                       check=True, capture_output=True)
        runs = 3
        with DiscoveryServer(pub, tls=True) as srv:
            def ours_fetch() -> None:
                shutil.rmtree(work / "state" / "images", ignore_errors=True)
                fetch.fetch(app, discovery_port=srv.port, ca_file=srv.ca_file, cache=False, progress=False)

            def by_hand() -> None:
                dl = work / "dl"
                shutil.rmtree(dl, ignore_errors=True)
                dl.mkdir()
                os_, arch = discovery.default_os_arch()
                base = f"https://localhost:{srv.port}"
                curl = ["curl", "-sSf", "--noproxy", "*", "--cacert", srv.ca_file]
                subprocess.run(curl + ["-o", str(dl / "page.html"), f"{base}/big?ac-discovery=1"], check=True)
                url = f"{base}/aci/{os_}/{arch}/localhost/big-1.0.0.aci"
                subprocess.run(curl + ["-o", str(dl / "x.aci.asc"), url + ".asc"], check=True)
                subprocess.run(curl + ["-o", str(dl / "x.aci"), url], check=True)
                subprocess.run(["gpg", "--homedir", str(gnupg), "--batch", "--verify",
                                str(dl / "x.aci.asc"), str(dl / "x.aci")], check=True, capture_output=True)

            t_ours = best(ours_fetch, runs)
            t_ref = best(by_hand, runs)
        mib = (pub / "big-1.0.0.aci").stat().st_size / (1 << 20)
        print(f"fetch {mib:.0f} MiB https  sandbox fetch (discover+asc+download+verify+check+import): "
              f"{t_ours:6.2f} s  ({mib / t_ours:6.1f} MiB/s, best of {runs})")
        print(f"fetch {mib:.0f} MiB https  curl x3 + gpg --verify (no import):                        "
              f"{t_ref:6.2f} s  ({mib / t_ref:6.1f} MiB/s, best of {runs})")
        print(f"fetch ratio sandbox/(curl+gpg): {t_ours / t_ref:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
