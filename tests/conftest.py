"""Shared test fixtures and the suite's guards.

1. Root guard: a test marked ``root`` that is skipped while the suite runs as root fails the
   session (CI runs as root; those tests must really run there).
2. CI guard: under CI (``CI=true``) *any* skipped test fails the session — a skip there means a
   missing install step (a tool, a Debian package) that the project's own files must provide.
3. Leftover guard: at session end, any network namespace, host link or mount that appeared during
   the run and is still there fails the session and is listed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sandbox._sys import mountinfo

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() == "true"
_skipped_root_tests: list[str] = []
_skipped_in_ci: list[str] = []
_baseline: dict[str, set[str]] = {}


def _machine_state() -> dict[str, set[str]]:
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    links = set(os.listdir("/sys/class/net"))
    mounts = mountinfo.mount_points()
    return {"network namespaces": netns, "host links": links, "mounts": mounts}


_made_state_dir: list[str] = []
_made_basetemp: list[str] = []
_VAR_LIB_CNI = Path("/var/lib/cni")
_var_lib_cni_existed = _VAR_LIB_CNI.exists()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Every session its own temp root. pytest's numbered dirs under /tmp/pytest-of-USER are
    shared by all sessions, and with tmp_path_retention_policy "none" a session that starts or
    ends deletes the others' (no lock is taken when nothing is kept): two test runs on one
    machine would pull the files out from under each other."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="sbx-pytest-")
        _made_basetemp.append(config.option.basetemp)


def pytest_sessionstart(session: pytest.Session) -> None:
    _baseline.update(_machine_state())
    # No test may write to the machine's /var/lib/sandbox: the session gets its own state dir
    # (tests that need a fresh one use the sandbox_dir / lab_state fixtures).
    if not os.environ.get("SANDBOX_DIR"):
        d = tempfile.mkdtemp(prefix="sbx-test-state-")
        os.environ["SANDBOX_DIR"] = d
        _made_state_dir.append(d)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces/mounts); run the suite as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if IS_ROOT and report.skipped and "root" in report.keywords:
        _skipped_root_tests.append(report.nodeid)
    elif IN_CI and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped_in_ci.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = []
    if _skipped_root_tests:
        problems.append("tests marked 'root' were skipped although the suite runs as root:\n  "
                        + "\n  ".join(_skipped_root_tests))
    if _skipped_in_ci:
        problems.append("tests were skipped in CI (a missing install step?):\n  "
                        + "\n  ".join(_skipped_in_ci))
    # Helpers developing in parallel on one machine may set SANDBOX_NO_LEFTOVER_GUARD=1;
    # CI and `make test` never do.
    now = {} if os.environ.get("SANDBOX_NO_LEFTOVER_GUARD") == "1" else _machine_state()
    for kind, names in now.items():
        left = sorted(names - _baseline.get(kind, set()))
        if left:
            problems.append(f"{kind} left behind by the tests: {' '.join(left)}")
    for d in _made_state_dir + _made_basetemp:
        shutil.rmtree(d, ignore_errors=True)
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
