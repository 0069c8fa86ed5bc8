"""How stage0 starts a pod: forked processes when it can, exec'd interpreters when it cannot
(a Jupyter kernel has threads), with the same result either way; and the pieces that make a
pod start fast (a light import path, pidfd waits, RFC 4122 UUIDs without the uuid module)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid as uuid_module
from pathlib import Path

import pytest

from sandbox._sys import proc as _proc
from sandbox.image.store import Store
from sandbox.net import netns
from sandbox.pod import stage0 as pod

from waiting import eventually


def test_new_uuid_is_an_rfc4122_version4_uuid() -> None:
    seen = set()
    for _ in range(500):
        u = pod.new_uuid()
        parsed = uuid_module.UUID(u)            # the standard library as the oracle
        assert parsed.version == 4 and parsed.variant == uuid_module.RFC_4122
        assert str(parsed) == u
        seen.add(u)
    assert len(seen) == 500


def test_fork_call_exit_code_timeout_output_and_closed_descriptors(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.set_inheritable(w, True)                 # even an inheritable descriptor is closed
    log = tmp_path / "child.log"

    def child() -> int:
        print("hello from the child")
        try:
            os.fstat(w)
        except OSError:
            return 7                            # the parent's descriptor is not there
        return 1
    try:
        c = _proc.fork_call(child, args="test child", output=str(log))
        assert c.wait() == 7 and c.returncode == 7 and c.poll() == 7
    finally:
        os.close(r)
        os.close(w)
    assert log.read_text() == "hello from the child\n"
    slow = _proc.fork_call(lambda: (time.sleep(0.3), 3)[1], args="slow child")
    t0 = time.monotonic()
    assert _proc.wait_for(slow, 0.02) is None           # still running: None, not an exception
    with pytest.raises(subprocess.TimeoutExpired):      # Popen's behaviour for wait(timeout)
        slow.wait(0.01)
    assert slow.wait() == 3 and time.monotonic() - t0 < 5
    popen = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    assert _proc.wait_for(popen, 10) == 4               # the same helper waits on a Popen


def test_a_forgotten_child_is_reaped_later() -> None:
    """A Child dropped while it runs (a detached pod's supervisor) leaves no zombie behind."""
    import gc
    c = _proc.fork_call(lambda: (time.sleep(0.2), 0)[1], args="forgotten child")
    pid = c.pid
    del c
    gc.collect()
    assert pid in _proc._forgotten
    state = Path(f"/proc/{pid}/stat")
    # the child has ended (a zombie: only its parent's wait can take it), however slow the
    # machine (a fixed 0.4 s was too short in an emulated aarch64 guest)
    eventually(lambda: state.read_text().split()[2], lambda s: s == "Z", timeout=60)
    _proc.fork_call(lambda: 0, args="next child").wait()   # reaps the forgotten one first
    assert pid not in _proc._forgotten
    assert not state.exists() or state.read_text().split()[2] != "Z"


def test_can_fork_is_false_while_another_thread_runs(monkeypatch) -> None:
    monkeypatch.delenv("SANDBOX_NO_FORK", raising=False)
    import threading
    done = threading.Event()
    t = threading.Thread(target=done.wait)
    t.start()
    try:
        assert not _proc.can_fork()
    finally:
        done.set()
        t.join()
    assert _proc.can_fork() == (threading.active_count() == 1)


def fresh_python(code: str) -> str:
    """What ``code`` prints when run by a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_progress_bar_leaves_no_thread_behind() -> None:
    """tqdm's monitor thread would forbid forking for the rest of the process's life (checked
    in a fresh interpreter: in this one an earlier bar may have started a monitor already)."""
    code = ("import threading\n"
            "from sandbox._progress import tqdm_class\n"
            "for bar in (tqdm_class(), tqdm_class(auto=False)):\n"
            "    with bar(total=3, disable=False) as b:\n"
            "        b.update(3)\n"
            "print(threading.active_count())\n")
    assert fresh_python(code) == "1"


def test_the_run_path_imports_stay_light() -> None:
    """What `sandbox run-prepared` imports before it forks the supervisor: none of the modules
    that made a pod start slow (each costs 1-10 ms at every start)."""
    code = ("import sys\n"
            "from sandbox import cli\n"
            "cli.build_parser('run-prepared').parse_args(['run-prepared', 'x'])\n"
            "from sandbox.pod import stage0, metadata, stage1\n"
            "from sandbox._sys import proc\n"
            "from sandbox.net import netns\n"
            "heavy = {'typing', 'dataclasses', 'inspect', 'subprocess', 'shutil', 'uuid',\n"
            "         'platform', 'http.server', 'http.client', 'secrets', 'hashlib', 'ssl',\n"
            "         'concurrent.futures', 'sandbox.image.manifest', 'sandbox.image.store', 'sandbox.image.aci'}\n"
            "print(sorted(heavy & set(sys.modules)))\n")
    assert fresh_python(code) == "[]"


@pytest.mark.root
def test_run_prepared_reads_its_plain_arguments_without_argparse(store: Store, stop_pods) -> None:
    """`sandbox run-prepared UUID` (the start bench_pod.py measures against runc) runs its pod
    without importing argparse; any other shape of it goes through the parser."""
    p = pod.prepare(store, ["example.com/busybox"], net=["none"],
                    exec_={0: ["/bin/sh", "-c", "echo hi"]})
    stop_pods.append(p.uuid)
    code = ("import sys\n"
            "from sandbox import cli\n"
            f"rc = cli.main(['run-prepared', '{p.uuid}'])\n"
            "print(rc, sorted({'argparse', 'gettext'} & set(sys.modules)))\n")
    out = fresh_python(code).splitlines()
    assert out == ["[busybox] hi", "0 []"]
    assert pod.find(p.uuid)[0] == "exited-garbage"
    bad = subprocess.run([sys.executable, "-m", "sandbox", "run-prepared", "--detahc", p.uuid],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "usage: sandbox run-prepared [-h] [--detach] UUID" in bad.stderr


@pytest.mark.root
def test_a_pod_runs_the_same_when_stage0_cannot_fork(store: Store, stop_pods, monkeypatch) -> None:
    """The exec fallback (`python -m sandbox.pod.stage0 supervise`, `python -m sandbox.pod.stage1 run`
    with its relay) gives the same exit code, logs and clean-up as the fork path."""
    results = {}
    for mode in ("fork", "exec"):
        if mode == "exec":   # inherited by the exec'd supervisor, so stage1 is exec'd too
            monkeypatch.setenv("SANDBOX_NO_FORK", "1")
        p = pod.prepare(store, ["example.com/busybox"], net=["none"],
                        exec_={0: ["/bin/sh", "-c", "echo out-$$; echo err >&2; exit 3"]})
        stop_pods.append(p.uuid)
        code = pod.run_prepared(p.uuid)
        state, d = pod.find(p.uuid)
        results[mode] = (code, state, pod.logs(p.uuid)["busybox"],
                         len((d / "stage1.pid").read_text().split()))
        assert not netns.exists(pod.netns_name(p.uuid))
        assert json.loads((d / "run.json").read_text())["exitCode"] == 3
    # the app is PID 2 of the pod either way (PID 1 is stage1's init)
    assert results["fork"][:3] == results["exec"][:3] == (
        3, "exited-garbage", {"stdout": "out-2\n", "stderr": "err\n"})
    assert results["fork"][3] == 1 and results["exec"][3] == 2     # PID 1 / relay + PID 1
