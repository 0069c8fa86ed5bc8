"""Notebook 05's claims about unshare(1), checked with the real tool: it execs the command in
its own process (no fork), and without -m the bind mount lands in our mount table (with -m it
does not, and the file holds no namespace)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sandbox._sys import mountinfo
from sandbox.course import unshare_demo
from sandbox.net import netns

pytestmark = [pytest.mark.root]


def test_unshare_execs_the_command_in_its_own_process() -> None:
    got = unshare_demo.exec_in_place()
    assert got["PID of the process started as unshare"] == got["PID the shell reports ($$)"]
    assert got["the same process (exec, no fork)"] is True
    assert got["the shell's netns"] != got["our netns"]


def test_without_m_the_mount_is_ours_and_with_m_it_is_gone(tmp_path: Path) -> None:
    s = netns.Session(prefix="sbx-ud")
    try:
        plain = unshare_demo.slide_line(tmp_path / "n", session=s)
        private = unshare_demo.slide_line(tmp_path / "mn", mount_ns=True, session=s)
        # independent looks: the kernel's mount table and the nsfs ioctl
        assert str(tmp_path / "n") in mountinfo.mount_points() and netns.is_netns(tmp_path / "n")
        assert str(tmp_path / "mn") not in mountinfo.mount_points()
        assert not netns.is_netns(tmp_path / "mn") and (tmp_path / "mn").stat().st_size == 0
        assert (plain["exit code"], plain["PATH holds a netns afterwards"],
                plain["the mount is in our mount table"]) == (0, True, True)
        assert (private["exit code"], private["PATH holds a netns afterwards"],
                private["the mount is in our mount table"]) == (0, False, False)
    finally:
        s.close()
    assert not (tmp_path / "n").exists()
