"""environment.yml <-> pyproject.toml: the conda-forge route must not drift (teaching.md §3.6).

conda cannot run here (no conda in Debian or on PyPI, conda-forge unreachable), so the file is
checked offline: YAML shape, conda MatchSpec-like specs, pip entries, and the package sets of both
files compared modulo the documented PyPI -> conda-forge name map (provision/vm/environment_yml.py).
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

TOP = Path(__file__).resolve().parents[2]
GEN = TOP / "provision" / "vm" / "environment_yml.py"
# A conda MatchSpec as used here: name, optional space + version constraints joined by commas.
MATCHSPEC = re.compile(r"^([a-z0-9][a-z0-9_.-]*)(?: ((?:[<>=!~]=?|==)[0-9][0-9a-z.*]*(?:,(?:[<>=!~]=?)[0-9][0-9a-z.*]*)*))?$")


def _gen():
    spec = importlib.util.spec_from_file_location("environment_yml", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def env() -> dict:
    return yaml.safe_load((TOP / "environment.yml").read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((TOP / "pyproject.toml").read_text())


def _conda_and_pip(env: dict) -> tuple[dict[str, str], list[str]]:
    conda: dict[str, str] = {}
    pip: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert list(dep) == ["pip"], f"only a pip sub-list is allowed, got {dep}"
            pip.extend(dep["pip"])
            continue
        m = MATCHSPEC.match(dep)
        assert m, f"not a conda spec: {dep!r}"
        assert m.group(1) not in conda, f"{m.group(1)} listed twice"
        conda[m.group(1)] = m.group(2) or ""
    return conda, pip


def test_shape_channels_and_specs(env: dict) -> None:
    assert set(env) <= {"name", "channels", "dependencies"}, set(env)
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda, pip = _conda_and_pip(env)
    assert "graphviz" in conda, "the Graphviz binary (conda-forge `graphviz`) must be listed"
    assert "pip" in conda
    for spec in conda.values():  # every version constraint is a valid specifier set too
        SpecifierSet(spec)
    for entry in pip:  # the project itself, or a PEP 508 requirement
        if entry.startswith("-e "):
            assert (TOP / entry[3:].split("[")[0].strip() / "pyproject.toml").exists(), entry
        else:
            Requirement(entry)
    assert any(e.startswith("-e .") for e in pip), "the project must be installed through pip"


def test_python_matches_requires_python(env: dict, pyproject: dict) -> None:
    conda, _ = _conda_and_pip(env)
    assert SpecifierSet(conda["python"]) == SpecifierSet(pyproject["project"]["requires-python"])


def test_same_packages_and_versions_as_pyproject(env: dict, pyproject: dict) -> None:
    name_map = _gen().NAME_MAP  # documented PyPI -> conda-forge names
    conda, _ = _conda_and_pip(env)
    want = {}
    for line in pyproject["project"]["dependencies"]:
        req = Requirement(line)
        want[name_map.get(_norm(req.name), _norm(req.name))] = SpecifierSet(str(req.specifier))
    extras = {"python", "pip", "graphviz"}
    got = {k: SpecifierSet(v) for k, v in conda.items() if k not in extras}
    assert sorted(set(want) - set(got)) == [], "in pyproject.toml but not in environment.yml"
    assert sorted(set(got) - set(want)) == [], "in environment.yml but not in pyproject.toml"
    for name, spec in want.items():
        assert got[name] == spec, f"{name}: pyproject says {spec}, environment.yml says {got[name]}"


def test_test_extras_are_pip_entries(env: dict, pyproject: dict) -> None:
    """The suite's tools (pytest, its plugins such as pytest-random-order) come with the env."""
    _, pip = _conda_and_pip(env)
    got = {_norm(Requirement(e).name): SpecifierSet(str(Requirement(e).specifier))
           for e in pip if not e.startswith("-e ")}
    want = {_norm(Requirement(r).name): SpecifierSet(str(Requirement(r).specifier))
            for r in pyproject["project"]["optional-dependencies"]["test"]}
    assert got == want and "pytest-random-order" in got


def test_committed_file_is_what_the_generator_writes() -> None:
    r = subprocess.run([sys.executable, str(GEN), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_generator_follows_a_changed_pyproject(pyproject: dict) -> None:
    # A dependency added to pyproject.toml must show up (renamed where conda-forge differs).
    mod = _gen()
    changed = {**pyproject, "project": {**pyproject["project"]}}
    changed["project"]["dependencies"] = [*pyproject["project"]["dependencies"], "Graphviz >= 0.21"]
    with pytest.raises(AssertionError):  # duplicate python-graphviz is caught by the checks above
        _conda_and_pip(yaml.safe_load(mod.render(changed)))
    changed["project"]["dependencies"] = [*pyproject["project"]["dependencies"], "Some_Pkg>=1.2"]
    conda, _ = _conda_and_pip(yaml.safe_load(mod.render(changed)))
    assert conda["some-pkg"] == ">=1.2"
    assert mod.render(changed) != (TOP / "environment.yml").read_text()
