"""Shared test fixtures and the suite's guards.

1. Skip guard: while the suite runs as root (on every machine, CI or not), a skipped test fails
   the session — a skip there means something the project's own files must install — unless the
   test is marked ``needs_optional("TOOL")`` and README.md lists TOOL under "Optional tools".
   Without root, tests marked ``root`` are skipped (and only those may be). A skip because the
   kit's own module does not import (``importorskip("sandbox…")``) fails the session always.
2. Leftover guard: at session end, whatever the run made and did not remove fails the session
   and is listed: network namespaces, host links, mounts, cgroups (``sandbox/<pod>`` groups in any
   hierarchy), iptables rules and chains in the host's namespace, /var/lib/cni entries, processes
   the suite started (still alive), and temporary directories (the session has a private
   TMPDIR, so every temp dir it made is under it). A state or temp directory with a mount
   left below it is kept, not deleted (removing it would reach through the mount).
   ``SANDBOX_NO_LEFTOVER_GUARD=1`` turns the guard off for developers who share a machine
   (others' namespaces come and go during their run); CI and ``make test`` never set it.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sandbox._sys import cgroupfs, mountinfo

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[1]
SESSION_VAR = "SANDBOX_TEST_SESSION"    # in the environment of every process the suite starts
STATE_VAR = "SANDBOX_TEST_STATE"        # the state dir the session made (workers make their own)
_bad_skips: list[str] = []
_baseline: dict[str, set[str]] = {}


def optional_tools(readme: Path = ROOT / "README.md") -> set[str]:
    """The tools README.md lists under its "Optional tools" heading (each `name` in backticks)."""
    text = readme.read_text()
    m = re.search(r"^#+ Optional tools\s*$(.*?)(?=^#)", text + "\n#", re.M | re.S)
    return set(re.findall(r"`([a-z0-9][a-z0-9+.-]+)`", m.group(1))) if m else set()


def _iptables(table: str) -> set[str]:
    if shutil.which("iptables") is None:
        return set()
    cp = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True)
    return {f"-t {table} {line}" for line in cp.stdout.splitlines()} if cp.returncode == 0 else set()


def _pod_cgroups() -> set[str]:
    out = set()
    for h in cgroupfs.hierarchies():
        base = h.root / "sandbox"
        if base.is_dir():
            out |= {str(d) for d in base.iterdir() if d.is_dir()}
    return out


def _var_lib_cni() -> set[str]:
    d = Path("/var/lib/cni")
    return {str(p) for p in d.rglob("*")} if d.is_dir() else set()


def _machine_state() -> dict[str, set[str]]:
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    links = set(os.listdir("/sys/class/net"))
    mounts = mountinfo.mount_points()
    return {"network namespaces": netns, "host links": links, "mounts": mounts,
            "cgroups": _pod_cgroups(), "host iptables rules": _iptables("nat") | _iptables("filter"),
            "/var/lib/cni entries": _var_lib_cni()}


def _our_processes() -> dict[int, str]:
    """Live processes (not zombies) the session started, other than itself: those exec'd with
    its mark in their environment (wherever they were reparented to) and every descendant of
    this process (forked ones, e.g. a pod's supervisor, keep the environment it was exec'd with)."""
    mark = f"{SESSION_VAR}={os.environ[SESSION_VAR]}".encode()
    parent, marked = {}, set()
    for pid in (int(x) for x in os.listdir("/proc") if x.isdigit()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            fields = stat[stat.rindex(b")") + 2:].split()
            if fields[0] == b"Z":
                continue
            parent[pid] = int(fields[1])
            if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                marked.add(pid)
        except (OSError, ValueError):
            continue
    me, out = os.getpid(), {}
    for pid in parent:
        p, seen = pid, 0
        while p > 1 and p != me and p not in marked and seen < 64:
            p, seen = parent.get(p, 0), seen + 1
        if pid != me and (p == me or p in marked):
            with contextlib.suppress(OSError):
                out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")[:100]
    return out


_made_state_dir: list[str] = []
_made_basetemp: list[str] = []
_session_tmp: list[str] = []
_VAR_LIB_CNI = Path("/var/lib/cni")
_var_lib_cni_existed = _VAR_LIB_CNI.exists()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Every session its own temp root. pytest's numbered dirs under /tmp/pytest-of-USER are
    shared by all sessions, and with tmp_path_retention_policy "none" a session that starts or
    ends deletes the others' (no lock is taken when nothing is kept): two test runs on one
    machine would pull the files out from under each other. The session's TMPDIR is private
    too (inherited by every process it starts): what is left in it at the end, the suite left."""
    config.addinivalue_line("markers", "needs_optional(tool): may be skipped when TOOL, listed "
                                       "under README's Optional tools, is missing")
    if _is_worker(config):
        return
    if not _session_tmp:
        root = tempfile.mkdtemp(prefix="sbx-tests-")
        _session_tmp.append(root)
        os.environ["TMPDIR"] = tempfile.tempdir = root
        os.environ[SESSION_VAR] = f"{os.getpid()}-{os.path.basename(root)}"
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="sbx-pytest-")
        _made_basetemp.append(config.option.basetemp)


# The longest test files, about longest first (seconds on a quiet 2-core machine, --durations).
# pytest-xdist's loadfile queue runs the files with the most tests first; one of these started
# last would run alone at the end while the other worker idles.
HEAVY_FILES = ["tests/course/test_browser.py",          # ~80 s: JupyterLab and chromium
               "tests/course/test_journey.py",          # ~65 s: every lab, cell by cell
               "tests/test_newcomer.py",                # ~45 s: a fresh clone's make install
               "tests/notebooks/test_notebooks.py",     # ~60 s: every notebook, a test per unit
               "tests/pod/test_byhand.py",              # ~15 s
               "tests/course/test_cni_tour.py",         # ~13 s
               "tests/course/test_site.py",             # ~12 s: a Jupyter Book build
               "tests/discovery/test_fetch_bounds.py"]  # ~8 s: deadlines waited out


# Files whose tests share no module fixture and are each long: every test is a unit of its own
# (the notebooks file alone was the end of the run, one worker busy, the other idle).
SPLIT_FILES = {"tests/notebooks/test_notebooks.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` with HEAVY_FILES handed out first (longest-first balances the workers)
    and SPLIT_FILES handed out a test at a time."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class HeavyFilesFirst(LoadFileScheduling):
        _ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.split("::", 1)[0] in SPLIT_FILES else \
                super()._split_scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            queue = self.workqueue
            if not self._ordered and hasattr(queue, "move_to_end"):
                self._ordered = True        # the queue is complete at the first assignment
                rank = {f: i for i, f in enumerate(HEAVY_FILES)}
                heavy = sorted((u for u in queue if u.split("::", 1)[0] in rank),
                               key=lambda u: rank[u.split("::", 1)[0]])
                for unit in reversed(heavy):
                    queue.move_to_end(unit, last=False)
            super()._assign_work_unit(node)

    return HeavyFilesFirst(config, log)


def _is_worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker (tests/suite.py): the controller that started it keeps the guards."""
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_worker(session.config):      # the controller keeps the guards (sessionfinish)
        _baseline.update(_machine_state())
    # No test may write to the machine's /var/lib/sandbox: the session gets its own state dir
    # (tests that need a fresh one use the sandbox_dir / lab_state fixtures). Each xdist worker
    # gets its own too: a test's `gc` must not collect the pods of a test in another worker.
    inherited = os.environ.get("SANDBOX_DIR")
    if not inherited or (_is_worker(session.config) and inherited == os.environ.get(STATE_VAR)):
        d = tempfile.mkdtemp(prefix="sbx-test-state-")
        os.environ["SANDBOX_DIR"] = os.environ[STATE_VAR] = d
        _made_state_dir.append(d)


def pytest_deselected(items: list[pytest.Item]) -> None:
    """For tests/suite.py: the serial tests the parallel part left out, by id, so the serial part
    runs them without collecting the whole suite again (one worker writes; all collect alike)."""
    from suite import SERIAL_LIST
    out = os.environ.get(SERIAL_LIST)
    if not out or not items or not _is_worker(items[0].config) \
            or items[0].config.workerinput.get("workerid") != "gw0":
        return
    ids = [i.nodeid for i in items if i.get_closest_marker("serial") is not None]
    with open(out, "a") as f:
        f.write("".join(f"{n}\n" for n in ids))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        m = item.get_closest_marker("needs_optional")
        if m is not None and m.args:
            # carried in the test's report (to the xdist controller too)
            item.user_properties.append(("needs_optional", str(m.args[0])))
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces/mounts); run the suite as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def _skip_reason(report: pytest.TestReport) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.skipped or getattr(report, "wasxfail", None) is not None:
        return
    reason = _skip_reason(report)
    if re.search(r"could not import '(sandbox)[.']", reason):
        _bad_skips.append(f"{report.nodeid}: the kit's own module is missing ({reason})")
    elif IS_ROOT or IN_CI:
        tool = dict(report.user_properties).get("needs_optional")
        if tool is None:
            _bad_skips.append(f"{report.nodeid}: {reason}")
        elif tool not in optional_tools():
            _bad_skips.append(f"{report.nodeid}: {reason} ({tool!r} is not listed under "
                              "README's Optional tools)")


def _remove(d: str, problems: list[str]) -> None:
    """rm -rf a directory the session made, unless something is still mounted below it."""
    below = mountinfo.below(d)
    if below:
        problems.append(f"kept {d}: still mounted below it: {' '.join(below)}")
        return
    shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(trylast=True)     # after pytest-xdist's: its workers have ended by then
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = []
    if _bad_skips:
        problems.append("tests were skipped although they must run here (a missing install step? "
                        "an optional tool must be marked needs_optional and listed in the README):"
                        "\n  " + "\n  ".join(_bad_skips))
    # Helpers developing in parallel on one machine may set SANDBOX_NO_LEFTOVER_GUARD=1;
    # CI and `make test` never do.
    if _is_worker(session.config):
        # a worker removes what it made; the guards run once, in the controller, after every
        # worker has ended (what one worker has alive at its end is the other's, not a leftover)
        for d in _made_state_dir:
            _remove(d, [])
        return
    guard = os.environ.get("SANDBOX_NO_LEFTOVER_GUARD") != "1"
    now = _machine_state() if guard else {}
    for kind, names in now.items():
        left = sorted(names - _baseline.get(kind, set()))
        if left:
            problems.append(f"{kind} left behind by the tests: {' '.join(left)}")
    if guard:
        procs = _our_processes()
        if procs:
            problems.append("processes the tests started are still running (now killed): "
                            + "; ".join(f"{p} {c}" for p, c in sorted(procs.items())))
            for pid in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        ours = set(_made_state_dir + _made_basetemp)
        for root in _session_tmp:   # the suite's prefix; other tools' temp files just go
            left = sorted(str(p) for p in Path(root).iterdir()
                          if p.name.startswith("sbx") and str(p) not in ours)
            if left:
                problems.append(f"temporary directories left behind by the tests: {' '.join(left)}")
    for d in _made_state_dir + _made_basetemp + _session_tmp:
        _remove(d, problems)
    # The CNI runtime mounts a private /var/lib/cni for plugins; drop the empty mount point
    # if this session created it.
    if not _var_lib_cni_existed:
        with contextlib.suppress(OSError):
            _VAR_LIB_CNI.rmdir()
    if problems:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        for p in problems:
            if tr:
                tr.write_line(f"SUITE GUARD: {p}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def sandbox_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, private $SANDBOX_DIR for one test."""
    d = tmp_path / "sandbox-state"
    d.mkdir()
    monkeypatch.setenv("SANDBOX_DIR", str(d))
    return d


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the ``sandbox`` CLI in-process: returns (exit code, stdout, stderr)."""
    from sandbox.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse usage errors
            rc = int(e.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture(scope="session")
def catalog_acis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The lab catalogue's ACIs, built once per session, offline (busybox from the installed
    Debian package)."""
    from sandbox.image import catalog
    out = tmp_path_factory.mktemp("catalog")
    return catalog.build(out, allow_download=False, cache_dir=out / "cache", progress=False)


@pytest.fixture(scope="package")
def lab_state(tmp_path_factory: pytest.TempPathFactory, catalog_acis: dict[str, Path]):
    """A private $SANDBOX_DIR for a test package, with the catalogue imported into its store."""
    from sandbox.image.store import Store
    state = tmp_path_factory.mktemp("state")
    old = os.environ.get("SANDBOX_DIR")
    os.environ["SANDBOX_DIR"] = str(state)
    try:
        store = Store()
        for path in catalog_acis.values():
            store.import_aci(path)
        yield state
    finally:
        if old is None:
            os.environ.pop("SANDBOX_DIR", None)
        else:
            os.environ["SANDBOX_DIR"] = old
