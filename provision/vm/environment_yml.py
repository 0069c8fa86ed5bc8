"""Generate (or check) environment.yml from pyproject.toml: the conda-forge route (Binder, laptops).

    python provision/vm/environment_yml.py           # rewrite environment.yml
    python provision/vm/environment_yml.py --check   # exit 1 if it drifted from pyproject.toml

pyproject.toml stays the single source of the Python dependencies (teaching.md §3.6). The file lists
python (from requires-python), the Graphviz *binary*, pip, every [project].dependencies entry under
its conda-forge name, and installs the project itself through the pip section, followed by the
``test`` extras as pip requirements (from PyPI, like `make install`'s ``.[test]``: `make test` and
`pytest --random-order` work in the conda environment too). conda cannot run on
the CI machine, so the file is validated offline (tests/vm/test_environment_yml.py).
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
ENV_NAME = "container-standards-lab"
CHANNELS = ["conda-forge", "nodefaults"]

# PyPI name -> conda-forge name, where they differ. PyPI `graphviz` is the Python binding, which
# conda-forge calls `python-graphviz`; conda-forge's `graphviz` is the C tool `dot` (conda/conda#3889).
NAME_MAP: dict[str, str] = {"graphviz": "python-graphviz"}
# conda-only packages that have no PyPI counterpart in pyproject.toml.
EXTRA_CONDA = {"graphviz": "the `dot` binary the pictures are rendered with", "pip": "installs the project"}
PIP_SECTION = ["-e ."]

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def canonical(name: str) -> str:
    """PEP 503 normalised name (conda-forge names are lower-case with dashes too)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def conda_spec(requirement: str) -> str:
    """'graphviz>=0.20' -> 'python-graphviz >=0.20' (conda MatchSpec: name, space, version)."""
    m = _REQ.match(requirement.split(";")[0])
    if not m:
        raise ValueError(f"cannot read the requirement {requirement!r} in pyproject.toml")
    name, _extras, version = m.groups()
    conda_name = NAME_MAP.get(canonical(name), canonical(name))
    version = version.replace(" ", "")
    return f"{conda_name} {version}" if version else conda_name


def render(pyproject: dict) -> str:
    project = pyproject["project"]
    python = project["requires-python"].replace(" ", "")
    deps = sorted(conda_spec(r) for r in project["dependencies"])
    lines = [
        "# Generated from pyproject.toml by provision/vm/environment_yml.py - do not edit by hand;",
        "# run `python provision/vm/environment_yml.py` after changing pyproject.toml (a test checks).",
        "# conda env create -f environment.yml && conda activate " + ENV_NAME,
        f"name: {ENV_NAME}",
        "channels:",
        *[f"  - {c}" for c in CHANNELS],
        "dependencies:",
        f"  - python {python}",
        *[f"  - {name}  # {why}" for name, why in EXTRA_CONDA.items()],
        *[f"  - {d}" for d in deps],
        "  - pip:",
        *[f"      - {p}" for p in PIP_SECTION],
        *[f"      - {r.replace(' ', '')}" for r in pyproject["project"].get(
            "optional-dependencies", {}).get("test", [])],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    pyproject = tomllib.loads((TOP / "pyproject.toml").read_text())
    want = render(pyproject)
    path = TOP / "environment.yml"
    if argv[1:] == ["--check"]:
        if not path.exists() or path.read_text() != want:
            print("environment.yml is out of date with pyproject.toml: run "
                  "`python provision/vm/environment_yml.py` and commit the result.", file=sys.stderr)
            return 1
        print("environment.yml matches pyproject.toml")
        return 0
    if argv[1:]:
        print("usage: environment_yml.py [--check]", file=sys.stderr)
        return 2
    path.write_text(want)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
