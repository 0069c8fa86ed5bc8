"""The suite's own guards (tests/conftest.py), proven on a small suite run in a child pytest:
a skip as root fails the run unless the test needs an optional tool the README lists, an
importorskip of the kit's own module fails always, and whatever a test leaves behind — a temp
dir, a process, a netns, a mount under the state dir — is named, and the state dir with a mount
below it is kept, not deleted."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox._sys import libc, mountinfo
from sandbox.net import netns

ROOT = Path(__file__).resolve().parents[1]


def _suite_conftest():
    """tests/conftest.py as a module of its own (every conftest.py outside a package is named
    `conftest`, so `import conftest` may give another one)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("sbx_suite_conftest", ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_lists_the_optional_package_sets() -> None:
    """README's Optional tools = what provision/packages/optional/ installs beyond the default."""
    def packages(files: list[Path]) -> set[str]:
        return {line.split("#")[0].strip() for f in files for line in f.read_text().splitlines()
                if line.split("#")[0].strip()}
    default = packages(sorted((ROOT / "provision" / "packages").glob("*.txt")))
    optional = packages(sorted((ROOT / "provision" / "packages" / "optional").glob("*.txt")))
    assert _suite_conftest().optional_tools() == optional - default


def test_no_test_importorskips_the_kits_own_modules() -> None:
    """(The guard fails such a skip at run time; this finds one that happens not to skip.)"""
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "tests").rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"pytest\.importorskip\(\s*[\"']sandbox", line) and p.name != Path(__file__).name]
    assert found == []


@pytest.mark.root
@pytest.mark.parametrize("workers", [None, "2"], ids=["one-session", "xdist-workers"])
def test_the_guards_on_a_small_suite(tmp_path: Path, workers: str | None) -> None:
    """Alone and as `make test` runs it (tests/suite.py: xdist workers, the guards in the
    controller that started them, the tests' reports carried back to it)."""
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "README.md").write_text("# x\n\n### Optional tools\n\n`sbx-listed-tool`\n\n## end\n")
    shutil.copy(ROOT / "tests" / "conftest.py", suite / "tests" / "conftest.py")
    shutil.copy(ROOT / "tests" / "waiting.py", suite / "tests" / "waiting.py")
    ns = netns.unique_name("sbx-guard")
    (suite / "tests" / "test_small.py").write_text(textwrap.dedent(f"""
        import os, subprocess, tempfile
        import pytest
        from sandbox._sys import libc
        from sandbox.net import netns

        def test_plain_skip():
            pytest.skip("a tool is not installed")

        @pytest.mark.needs_optional("sbx-listed-tool")
        def test_optional_listed():
            pytest.skip("sbx-listed-tool is not installed")

        @pytest.mark.needs_optional("sbx-unlisted-tool")
        def test_optional_unlisted():
            pytest.skip("sbx-unlisted-tool is not installed")

        def test_kit_module_missing():
            pytest.importorskip("sandbox.no_such_module")

        def test_leaves_things_behind():
            tempfile.mkdtemp(prefix="sbx-forgotten-")
            subprocess.Popen(["sleep", "300"], start_new_session=True)
            netns.create({ns!r})
            d = os.path.join(os.environ["SANDBOX_DIR"], "mnt")
            os.mkdir(d)
            open(os.path.join(os.environ["SANDBOX_DIR"], "keep-me"), "w").close()
            libc.mount("tmpfs", d, "tmpfs", 0, "size=1m")
            with open({str(tmp_path / "state-path")!r}, "w") as f:   # (a worker's print is not shown)
                f.write(os.environ["SANDBOX_DIR"])
    """))
    env = {k: v for k, v in os.environ.items()
           if k not in ("SANDBOX_DIR", "SANDBOX_NO_LEFTOVER_GUARD", "CI")}
    xdist = ["-n", workers] if workers else []
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *xdist,
                        "tests"], cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    where = tmp_path / "state-path"
    state = re.fullmatch(r"(\S+)", where.read_text()) if where.exists() else None
    try:
        out = p.stdout
        assert p.returncode == 1, out
        guard = out[out.index("SUITE GUARD"):]
        assert "test_small.py::test_plain_skip: a tool is not installed" in guard
        assert "test_optional_listed" not in guard
        assert "'sbx-unlisted-tool' is not listed under README's Optional tools" in guard
        assert "test_kit_module_missing: the kit's own module is missing" in guard
        assert re.search(r"temporary directories left behind by the tests: \S*sbx-forgotten-", guard)
        assert re.search(r"processes the tests started are still running \(now killed\): \d+ sleep 300",
                         guard)
        assert re.search(rf"network namespaces left behind by the tests: .*\b{ns}\b", guard)
        mounts = re.search(r"mounts left behind by the tests: (.*)", guard).group(1).split()
        assert f"{state.group(1)}/mnt" in mounts and f"/run/netns/{ns}" in mounts
        # the directory kept is the state dir, or (a worker's) the session's temp root above it
        kept = re.search(r"kept (\S+): still mounted below it", guard).group(1)
        assert (state.group(1) + "/").startswith(kept + "/"), (kept, state.group(1))
        # the state dir was kept (its mount not reached through), the rest removed
        assert Path(state.group(1), "keep-me").exists()
    finally:
        if state and mountinfo.is_mount_point(f"{state.group(1)}/mnt"):
            libc.umount(f"{state.group(1)}/mnt")
        netns.delete(ns, missing_ok=True)
        tmp_root = Path(state.group(1)).parent if state else None
        if tmp_root is not None and tmp_root.name.startswith("sbx-tests-"):
            shutil.rmtree(tmp_root, ignore_errors=True)
