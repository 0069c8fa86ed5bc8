"""A path where a netns handle should be that is a FIFO (or a device): open(2) of a FIFO waits for
a writer for ever, so `sandbox net add NET FIFO`, `netns.enter`, a `--node FIFO` and each of the
kit's CNI plugins given it as CNI_NETNS hung (the red run of 2026-12-06). Now every opener of a
handle goes through `sandbox._sys.libc.open_ns`: a regular (nsfs) file only, O_NONBLOCK."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.net import netns
from sandbox.net.cni.runtime import Runtime
from sandbox.net.plugins import plugin_dir

from plugin_exec import run_plugin

pytestmark = [pytest.mark.root]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    p = tmp_path / "sbx-rr-fifo"
    os.mkfifo(p)
    return p


LIBRARY_CHECK = """
import sys
from sandbox.net import netns
fifo = sys.argv[1]
assert netns.is_netns(fifo) is False
for call in (lambda: netns.enter(fifo).__enter__(), lambda: netns.preexec_setns(fifo)):
    try:
        call()
    except netns.NetnsError as e:
        assert "Could not enter" in str(e), e
    else:
        raise AssertionError("no NetnsError")
"""


def test_the_library_refuses_a_fifo_at_once(fifo: Path) -> None:
    # in a child with a timeout: before the fix each of these waited for ever
    p = subprocess.run([sys.executable, "-c", LIBRARY_CHECK, str(fifo)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_net_add_with_a_fifo_is_one_sentence(tmp_path: Path, fifo: Path, node: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "10.conf").write_text('{"cniVersion": "1.0.0", "name": "sbxrr", "type": "loopback"}')
    for argv in (["sbxrr", str(fifo)], ["--node", str(fifo), "sbxrr", str(node)]):
        p = subprocess.run([sys.executable, "-m", "sandbox", "net", "add", "--conf-dir", str(conf),
                            "--cache-dir", str(tmp_path / "cache"), "--cni-path",
                            str(plugin_dir()), *argv], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and p.stderr.startswith("sandbox: "), p.stderr
        assert "Traceback" not in p.stderr
    assert Runtime(conf_dir=conf, cache_dir=tmp_path / "cache").cache.attachments() == []


@pytest.mark.parametrize("plugin", ["loopback", "bridge", "ptp"])
def test_the_kits_plugins_answer_a_fifo_as_cni_netns(plugin: str, fifo: Path, node: Path,
                                                     tmp_path: Path, short_name) -> None:
    conf = {"cniVersion": "1.0.0", "name": "sbxrr", "type": plugin, "bridge": short_name("sbxbr"),
            "ipam": {"type": "host-local", "subnet": "10.98.0.0/24",
                     "dataDir": str(tmp_path / "ipam")}}
    call = run_plugin(plugin_dir() / plugin, "ADD", conf, cid="sbxrr1", ns=fifo, node=node,
                      timeout=30)   # the hang was for ever: subprocess's timeout ends it
    assert call.rc != 0 and '"code"' in call.stdout and "netns" in call.stdout, call


def test_a_fifo_swapped_in_after_the_check_is_not_opened(tmp_path: Path, monkeypatch) -> None:
    """The handle checked is the one opened: a FIFO renamed over the path between the check and
    the open (here right after the first stat of either kind) is not what the descriptor is."""
    from sandbox._sys import libc
    handle, fifo = tmp_path / "sbx-handle", tmp_path / "sbx-swap-fifo"
    handle.symlink_to("/proc/self/ns/net")
    os.mkfifo(fifo)
    real_stat, real_fstat, swapped = os.stat, os.fstat, []

    def swap_after(fn):
        def call(*a, **kw):
            out = fn(*a, **kw)
            if not swapped:
                swapped.append(True)
                os.replace(fifo, handle)
            return out
        return call
    monkeypatch.setattr(os, "stat", swap_after(real_stat))
    monkeypatch.setattr(os, "fstat", swap_after(real_fstat))
    fd = libc.open_ns(handle)
    monkeypatch.undo()
    try:
        assert swapped and handle.is_fifo()
        assert os.fstat(fd).st_ino == os.stat("/proc/self/ns/net").st_ino
    finally:
        os.close(fd)
