"""`sandbox serve` over a directory holding damaged ACIs: each is a listed problem, the good
ones are still served (before: the scan died with EOFError, zlib.error or ReadError)."""
from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import pytest

from sandbox.dist.serve import DiscoveryServer, scan

from .conftest import build_aci


def damaged(good: bytes, raw_tar: bytes) -> dict[str, bytes]:
    return {
        "truncated-gzip.aci": good[: len(good) // 2],
        "corrupt-deflate.aci": good[:12] + b"\xff" * 20 + good[32:],
        "random.aci": bytes(range(256)) * 10,
        "empty.aci": b"",
        "truncated-xz.aci": lzma.compress(raw_tar)[:200],
        "garbage-in-gzip.aci": gzip.compress(b"\x01" * 5000),
        "only-gzip-magic.aci": b"\x1f\x8b",
    }


@pytest.mark.parametrize("name", list(damaged(b"x" * 100, b"y" * 100)))
def test_a_damaged_aci_is_a_problem_and_the_rest_is_served(tmp_path: Path, name: str) -> None:
    d = tmp_path / "pub"
    d.mkdir()
    good = build_aci(d / "hello-1.0.0.aci", "localhost/hello", {"version": "1.0.0"})
    data = good.read_bytes()
    (d / name).write_bytes(damaged(data, gzip.decompress(data))[name])
    images, keys, problems = scan(d)
    assert [i.name for i in images] == ["localhost/hello"]
    assert len(problems) == 1 and problems[0].startswith(name), problems
    assert "\n" not in problems[0]
    with DiscoveryServer(d) as srv:
        assert srv.names == ["localhost/hello"] and srv.problems == problems


def test_sandbox_serve_reports_them_in_one_line_each(tmp_path: Path) -> None:
    import subprocess
    import sys
    d = tmp_path / "pub"
    d.mkdir()
    good = build_aci(d / "hello-1.0.0.aci", "localhost/hello", {"version": "1.0.0"})
    (d / "broken.aci").write_bytes(good.read_bytes()[:300])
    p = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", str(d), "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=3)
    except subprocess.TimeoutExpired:        # it serves: stop it (our own process, by PID)
        p.terminate()
        out, err = p.communicate(timeout=10)
    assert "Traceback" not in err and "broken.aci" in out + err, (out, err)
