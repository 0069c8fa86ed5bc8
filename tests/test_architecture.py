"""The package layout's one rule: layers run one way (docs/architecture.md).

Every module of ``sandbox`` belongs to a layer; a module may import from its own layer and the
layers below it, never from a layer above — function-local imports and ``TYPE_CHECKING`` imports
included (they run too, or describe a dependency all the same). The order below is the one the
course teaches, and ``docs/architecture.md`` lists it in the same order (checked here).

``docs/architecture.svg`` is drawn from the real imports by this file; when a change adds or
removes a dependency between areas, regenerate it:

    .venv/bin/python tests/test_architecture.py
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "sandbox"
SVG = ROOT / "docs" / "architecture.svg"
DOC = ROOT / "docs" / "architecture.md"

# (layer, the module prefixes in it), lowest first. Written here once; the doc repeats it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("sandbox", "sandbox.errors", "sandbox.config", "sandbox.steps",
                    "sandbox.palette", "sandbox._progress", "sandbox._sys")),
    ("image", ("sandbox.image",)),
    ("render", ("sandbox.render",)),
    ("trust", ("sandbox.trust",)),
    ("dist", ("sandbox.dist",)),
    ("net", ("sandbox.net",)),
    ("pod", ("sandbox.pod",)),
    ("oci", ("sandbox.oci",)),
    ("course", ("sandbox.course",)),
    ("viz", ("sandbox.viz",)),
    ("cli", ("sandbox.cli", "sandbox.__main__")),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix that names ``module``'s layer."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported sandbox module) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "sandbox"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:              # relative: resolve against this module's package
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sandbox":
                continue
            for a in node.names:        # `from sandbox import aci` imports the module sandbox.aci
                sub = f"{target}.{a.name}"
                out.append((node.lineno, sub if sub in known else target))
    return out


def package_of(module: str) -> str:
    """The area a module belongs to, for the picture: sandbox.net.cni.runtime -> net."""
    return LAYERS[layer_of(module)][0]


def upward_imports() -> list[str]:
    mods = modules()
    known = set(mods)
    bad = []
    for name, path in mods.items():
        mine = layer_of(name)
        for line, target in imports_of(name, path, known):
            if layer_of(target) > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name} ({LAYERS[mine][0]}) imports "
                           f"{target} ({LAYERS[layer_of(target)][0]}), a higher layer")
    return bad


def edges() -> Counter[tuple[str, str]]:
    mods = modules()
    known = set(mods)
    count: Counter[tuple[str, str]] = Counter()
    for name, path in mods.items():
        for _, target in imports_of(name, path, known):
            a, b = package_of(name), package_of(target)
            if a != b:
                count[(a, b)] += 1
    return count


def dot_source() -> str:
    """The layers bottom (foundation) to top (cli), each listing its modules; an arrow for each
    area that imports another (not how often: the picture changes only when the structure
    does). Arrows into the foundation are left out: every area uses it."""
    mods = sorted(modules())
    lines = ["digraph architecture {",
             '  graph [rankdir=BT, fontname="Helvetica", ranksep=0.25, nodesep=0.3, fontsize=10,',
             '         label="an arrow: the area imports the one it points at; every area '
             'imports the foundation", labelloc=t];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
             'fillcolor="#f4f4f4"];', '  edge [fontname="Helvetica", fontsize=8, color="#888888"];']
    for i, (name, _) in enumerate(LAYERS):
        depth = 1 if name == "foundation" else 2      # the foundation lists _sys, not its parts
        inner = sorted({m.split(".")[min(depth, m.count("."))] for m in mods
                        if package_of(m) == name} - {name, "sandbox"})
        rows = [", ".join(inner[j:j + 5]) for j in range(0, len(inner), 5)]
        label = f"<<b>{name}</b>" + "".join(f"<br/>{r}" for r in rows) + ">"
        lines.append(f'  "{name}" [label={label}];')
        if i:
            # invisible spine: keeps the layers stacked in course order
            lines.append(f'  "{LAYERS[i - 1][0]}" -> "{name}" [style=invis, weight=10];')
    for (a, b) in sorted(edges()):
        if b != "foundation":
            lines.append(f'  "{b}" -> "{a}" [dir=back, arrowtail=normal];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg() -> str:
    return subprocess.run(["dot", "-Tsvg"], input=dot_source(), capture_output=True, text=True,
                          check=True).stdout


# --------------------------------------------------------------------------------------------


def test_no_module_imports_a_higher_layer() -> None:
    bad = upward_imports()
    assert not bad, "upward imports (move the code down, or the caller up):\n" + "\n".join(bad)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a function-local import from viz inside image is caught."""
    src = "def f():\n    from sandbox.viz import digraph\n    return digraph\n"
    p = tmp_path / "x.py"
    p.write_text(src)
    found = imports_of("sandbox.image.x", p, {"sandbox.viz"})
    assert found == [(2, "sandbox.viz")]
    assert layer_of("sandbox.viz") > layer_of("sandbox.image.x")


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_the_doc_lists_the_layers_in_this_order() -> None:
    text = DOC.read_text()
    listed = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", text, re.M)
    assert [name for _, name in listed] == [name for name, _ in LAYERS], (
        "docs/architecture.md's layer table must list the layers of tests/test_architecture.py "
        "in the same order")


def test_the_picture_is_drawn_from_todays_imports() -> None:
    assert SVG.read_text() == render_svg(), (
        "docs/architecture.svg is stale: run `.venv/bin/python tests/test_architecture.py`")


if __name__ == "__main__":
    SVG.write_text(render_svg())
    print(f"wrote {SVG.relative_to(ROOT)}", file=sys.stderr)
