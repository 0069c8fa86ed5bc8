"""Property: rendering random small DAGs (random files, directories, symlinks and whitelists) on
disk gives exactly what a tiny in-memory model of ace.md §Filesystem Setup gives.

The model is the spec read literally: flatten depth first (dependencies in listed order, then
the image); extract each layer in order into a dict, overwriting what is there (a non-directory
replaces a whole subtree; a directory over a directory merges); drop an entry unless every
non-empty pathWhitelist on the layer's chain lists it (directories: or lead to a listed path).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from renderkit import MemSource, dep, snapshot

from sandbox import render

NAMES = ["a", "b", "c"]
ALL_PATHS = [f"/{x}" for x in NAMES] + [f"/{x}/{y}" for x in NAMES for y in NAMES] + \
    [f"/{x}/{y}/{z}" for x in NAMES for y in NAMES for z in NAMES]


@st.composite
def rootfs(draw, prefix: str = "", depth: int = 0) -> dict:
    files: dict = {}
    for name in NAMES:
        path = f"{prefix}/{name}"
        kinds = ["none", "none", "file", "symlink"] + (["dir", "dir"] if depth < 2 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "file":
            files[path] = ("file", draw(st.sampled_from(["x", "y", "zz"])),
                           draw(st.sampled_from([0o644, 0o600, 0o755])))
        elif kind == "symlink":
            files[path] = ("symlink", draw(st.sampled_from(["a", "/a/b", "b/c", "."])))
        elif kind == "dir":
            files[path] = ("dir", draw(st.sampled_from([0o755, 0o700])))
            files.update(draw(rootfs(path, depth + 1)))
    return files


@st.composite
def dags(draw) -> list[dict]:
    n = draw(st.integers(2, 5))
    images = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=min(i, 3))) if i else []
        pwl = draw(st.one_of(st.none(), st.lists(
            st.sampled_from(ALL_PATHS + [p + "/" for p in ALL_PATHS[:3]]), max_size=8)))
        images.append({"name": f"i{i}", "deps": deps, "pwl": pwl, "files": draw(rootfs())})
    return images


def model(images: list[dict]) -> dict[str, tuple]:
    def flatten(i: int, chain: list[int]) -> list[tuple[int, list[int]]]:
        out = []
        for d in images[i]["deps"]:
            out += flatten(d, chain + [i])
        return out + [(i, chain + [i])]

    def admitted(path: str, is_dir: bool, chain: list[int]) -> bool:
        for j in chain:
            wl = {"/" + p.strip("/") for p in images[j]["pwl"] or []}
            if wl and not (path in wl or (is_dir and any(w.startswith(path + "/") for w in wl))):
                return False
        return True

    state: dict[str, tuple] = {}
    for i, chain in flatten(len(images) - 1, []):
        for path, spec in sorted(images[i]["files"].items()):
            if not admitted(path, spec[0] == "dir", chain):
                continue
            old = state.get(path)
            if old and old[0] == "dir" and spec[0] == "dir":
                state[path] = spec
                continue
            for p in [p for p in state if p == path or p.startswith(path + "/")]:
                del state[p]
            state[path] = spec
    out = {}
    for path, spec in state.items():
        if spec[0] == "file":
            out[path] = ("file", spec[1].encode(), spec[2])
        else:
            out[path] = spec
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_render_matches_the_model(images: list[dict]) -> None:
    mem = MemSource()
    for im in images:
        mem.add(im["name"], im["files"], deps=[dep(f"i{d}") for d in im["deps"]] or None,
                pwl=im["pwl"] or None)
    top = mem.find(images[-1]["name"])[0]
    with tempfile.TemporaryDirectory(prefix="sbx-prop-") as tmp:
        out = Path(tmp) / "out"
        trace = render.render(render.resolve(mem, top), out, mem.open_tar)
        got = snapshot(out)
    assert got == model(images)
    # the trace agrees with the tree: exactly the paths on disk have a final owner
    assert set(trace.final_paths()) == set(got)
