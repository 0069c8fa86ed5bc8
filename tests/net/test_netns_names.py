"""`sandbox netns add bad/name` bind-mounted a namespace at ./bad/name in whatever directory it
ran in, and `netns list` did not show it (issue 20): from the shell a name is one path component."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox._sys import mountinfo
from sandbox.net import netns

pytestmark = pytest.mark.root


def sandbox(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *argv], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize("name", ["bad/name", "../sbx-nw-up", "./sbx-nw-here", "/tmp/sbx-nw-abs"])
def test_a_name_with_a_slash_is_refused_and_makes_nothing(name: str, tmp_path: Path) -> None:
    for cmd in (["add", name], ["add", name, "--node"], ["del", name], ["exec", name, "--", "true"]):
        p = sandbox("netns", *cmd, cwd=tmp_path)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.count("\n") == 1 and p.stderr.startswith(
            f"sandbox: '{name}' is not a network namespace name: a name is one path component")
        assert "give a plain name" in p.stderr
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "sbx-nw-up").exists()
    assert not os.path.exists("/tmp/sbx-nw-abs")
    # (others' mounts come and go on a shared machine: only the places this test named count)
    assert not [m for m in mountinfo.mount_points()
                if m.startswith(str(tmp_path.parent)) or m == "/tmp/sbx-nw-abs"]


def test_what_add_makes_list_shows_and_del_removes(tmp_path: Path) -> None:
    name = netns.unique_name("sbx-nw")
    try:
        p = sandbox("netns", "add", name, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        listed = sandbox("netns", "list", cwd=tmp_path).stdout.splitlines()
        assert any(l.split("\t")[0] == name for l in listed), listed
        assert f"/run/netns/{name}" in mountinfo.mount_points()
        assert sandbox("netns", "del", name, cwd=tmp_path).returncode == 0
        assert not netns.path_of(name).exists()
    finally:
        netns.delete(name, missing_ok=True)
    assert list(tmp_path.iterdir()) == []
