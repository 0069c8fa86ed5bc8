"""Lab 1: content addressing — predict which changes move an image ID, then compute one by hand
and find the archives that carry a given ID (slides 11–14, 23; aci.md §Image ID).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import LabError, Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 1
SLUG = "first-aci"
TITLE = "Content addressing: predict, compute, find"
FOLLOWS = "01"
OBJECTIVES = (
    'write an ImageManifest and build `hello.aci` with the kit',
    'compute its image ID yourself with `hashlib`, and see the check catch the classic mistake',
)
INTRO = """
Slides 11–14: *your container image* has a name (`example.com/app`) and an ID
(`d474e8c57737625c`) computed from its bytes. In appc (`aci.md` §Image ID) the image ID is
`sha512-` followed by the SHA-512 of the image's *uncompressed* tar. That one sentence decides
which changes give a new ID and which do not — predict them before you measure, then compute an
ID yourself and use it to find an image."""

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    "your predictions for the six changes are recorded",
    "your predictions match what the experiments show",
    "your hand-computed image ID equals sandbox.image.aci.image_id",
    "you found every mystery archive that carries the target ID",
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = "record your predictions"

# The six changes to hello.aci the learner predicts (True: the image ID changes).
CHANGES = {
    "recompress": "build the same layout with xz instead of gzip",
    "rename": "copy hello.aci to another file name",
    "content": "change one byte of rootfs/hello.txt and build again",
    "mtime": "only touch rootfs/hello.txt (new modification time) and build again",
    "label": "add a label to the manifest and build again",
    "rebuild": "build the unchanged layout again",
}
WHY = {
    "recompress": "the ID is the hash of the *uncompressed* tar; compression only wraps it",
    "rename": "the file name is not inside the archive",
    "content": "the file's bytes are inside the tar",
    "mtime": "a tar header records each file's modification time, and the header is hashed too",
    "label": "the manifest is a file inside the tar",
    "rebuild": "the kit builds reproducibly: same layout, same bytes (sorted entries, fixed gzip header)",
}

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
import gzip
import hashlib
import lzma

from sandbox.course import labs
from sandbox.course.labs import lab1
from sandbox.image import aci
from sandbox.viz import rows_table

ws = labs.workspace(1)          # $SANDBOX_DIR/labs/01: everything this lab makes lives here
hello = lab1.setup(ws)          # a layout ws/hello (manifest + rootfs/hello.txt) and hello.aci
print(hello, aci.image_id(hello))
lab1.CHANGES
'''),
    md("""## 1. Predict

Six things one could do to `hello.aci` (the dictionary above). For each, does the image ID
change? Decide from the rule in the introduction alone — **before** you run the experiments
below — and record your answers as a dictionary `{change: True if the ID changes, else False}`.
"""),
    todo('''
ws.answer("predictions", {"recompress": False, "rename": False, "content": True,
                          "mtime": True, "label": True, "rebuild": False})
''', '''
# ws.answer("predictions", {"recompress": ..., "rename": ..., "content": ..., "mtime": ...,
#                           "label": ..., "rebuild": ...})
'''),
    md("""## 2. The experiments

The kit makes each change on a copy and computes the new ID. Compare with what you predicted
(the check below says which predictions were wrong, and why):"""),
    code('rows_table(lab1.experiments(ws), f"hello.aci is {aci.image_id(hello)[:23]}…")'),
    md("""## 3. An image ID by hand

Compute the ID of `hello.aci` yourself, without `aci.image_id`: open the file, undo the
compression, hash what comes out with `hashlib`. Record it with `ws.answer("image_id", …)` in
the spec's form, `sha512-` followed by the hex digest."""),
    todo('''
with gzip.open(hello, "rb") as f:
    my_id = "sha512-" + hashlib.sha512(f.read()).hexdigest()
ws.answer("image_id", my_id)
''', '''
my_id = None
ws.answer("image_id", my_id)
'''),
    md("""## 4. Find an image by its ID

A colleague sends you an image ID and a directory of archives (`lab1.mystery(ws)`), compressed
in different ways. Which of them *are* that image? Compute their IDs your way (the first bytes of
a file tell its compression: `1f 8b` gzip, `fd 37 7a 58 5a 00` xz, `42 5a 68` bzip2, no magic:
plain tar) and record the set of file names with `ws.answer("mystery", {...})`."""),
    code('''
target, archives = lab1.mystery(ws)
print("target ID:", target)
for p in archives:
    print(p.name, p.read_bytes()[:6].hex(" "))
'''),
    todo('''
def my_image_id(path):
    data = path.read_bytes()
    if data[:2] == b"\\x1f\\x8b":
        data = gzip.decompress(data)
    elif data[:6] == b"\\xfd7zXZ\\x00":
        data = lzma.decompress(data)
    return "sha512-" + hashlib.sha512(data).hexdigest()

ws.answer("mystery", {p.name for p in archives if my_image_id(p) == target})
''', '''
ws.answer("mystery", set())
'''),
    *footer(NUMBER)[:2],
    md("The kit agrees (and so does `sha512sum` of `zcat hello.aci`): the short form appc prints "
       "is the first 32 hex digits."),
    code('lab1.kit_image_id(ws)'),
    *footer(NUMBER)[2:],
]


# ------------------------------------------------------------------------------- the lab's files


def _layout(ws: Workspace) -> Path:
    return ws.path / "hello"


def _write_layout(layout: Path, labels: list[dict[str, str]] | None = None) -> None:
    (layout / "rootfs").mkdir(parents=True, exist_ok=True)
    f = layout / "rootfs" / "hello.txt"
    f.write_text("Hello, world!\n")
    os.utime(f, (1459468800, 1459468800))
    (layout / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/hello",
        "labels": labels or [{"name": "version", "value": "1.0.0"}]}, indent=2))
    for p in (layout / "manifest", layout / "rootfs", layout):
        os.utime(p, (1459468800, 1459468800))


def setup(ws: Workspace) -> Path:
    """The layout ``hello`` (manifest + ``rootfs/hello.txt``, fixed times) and ``hello.aci``."""
    from sandbox.image import aci
    layout = _layout(ws)
    _write_layout(layout)
    out = ws.path / "hello.aci"
    aci.build(layout, out, overwrite=True)
    return out


def experiments(ws: Workspace) -> list[dict[str, Any]]:
    """Make each of :data:`CHANGES` on a copy and compute the new ID; records the results (and
    when) in the workspace for the check; returns one row per change."""
    from sandbox.image import aci
    base = ws.path / "hello.aci"
    if not base.is_file():
        raise LabError("There is no hello.aci yet: run the first cell of the lab.")
    d = ws.path / "experiments"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    before = aci.image_id(base)
    ids: dict[str, str] = {}

    def variant(name: str, edit) -> str:
        layout = d / name
        shutil.copytree(_layout(ws), layout, symlinks=True)
        edit(layout)
        return aci.build(layout, d / f"{name}.aci")

    ids["recompress"] = aci.build(_layout(ws), d / "recompress.aci", compression="xz")
    shutil.copy(base, d / "renamed.aci")
    ids["rename"] = aci.image_id(d / "renamed.aci")

    def flip(layout: Path) -> None:
        f = layout / "rootfs" / "hello.txt"
        st = f.stat()
        f.write_text("Hello, world?\n")
        os.utime(f, (st.st_atime, st.st_mtime))
    ids["content"] = variant("content", flip)
    ids["mtime"] = variant("mtime", lambda l: os.utime(l / "rootfs" / "hello.txt", (time.time(),) * 2))

    def label(layout: Path) -> None:
        st = (layout / "manifest").stat()
        _write_layout(layout, [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"}])
        os.utime(layout / "manifest", (st.st_atime, st.st_mtime))
    ids["label"] = variant("label", label)
    ids["rebuild"] = aci.build(_layout(ws), d / "rebuild.aci")
    result = {"base": before, "ids": ids, "time": time.time()}
    (d / "results.json").write_text(json.dumps(result, indent=1))
    return [{"change": CHANGES[k], "new ID": v[:23] + "…", "ID changed": v != before}
            for k, v in ids.items()]


def _results(ws: Workspace) -> dict[str, Any] | None:
    try:
        return json.loads((ws.path / "experiments" / "results.json").read_text())
    except (OSError, ValueError):
        return None


def mystery(ws: Workspace) -> tuple[str, list[Path]]:
    """Three archives and a target ID: ``mystery-a`` and ``mystery-c`` hold the same tar (one
    gzip, one xz) — the target —, ``mystery-b`` a tar that differs in one header field. The
    letters are shuffled per workspace."""
    from sandbox.image import aci
    import random
    d = ws.path / "mystery"
    if (d / "target").is_file():
        return (d / "target").read_text(), sorted(d.glob("mystery-*.aci"))
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    layout = d / "layout"
    _write_layout(layout)
    (layout / "rootfs" / "greeting").write_text("from your colleague\n")
    os.utime(layout / "rootfs" / "greeting", (1459468800, 1459468800))
    names = ["mystery-a.aci", "mystery-b.aci", "mystery-c.aci"]
    random.shuffle(names)
    target = aci.build(layout, d / names[0], compression="gzip")
    aci.build(layout, d / names[1], compression="xz")
    os.chmod(layout / "rootfs" / "greeting", 0o600)      # one header field differs: the mode
    aci.build(layout, d / names[2], compression="none")
    shutil.rmtree(layout)
    (d / "target").write_text(target)
    (d / "answer.json").write_text(json.dumps(sorted(names[:2])))
    return target, sorted(d.glob("mystery-*.aci"))


def kit_image_id(ws: Workspace) -> tuple[str, str] | str:
    """The kit's image ID of the lab's hello.aci and its short form (or why there is none)."""
    from sandbox.errors import SandboxError
    from sandbox.image import aci
    out = ws.path / "hello.aci"
    if not out.is_file():
        return f"no {out.name} yet: run the lab's first cell"
    try:
        full = aci.image_id(out)
    except SandboxError as e:
        return f"{out.name} is not an ACI the kit can read: {e}"
    return full, aci.short_id(full)


# ------------------------------------------------------------------------------- the checks


def checks(ws: Workspace) -> Iterable[Result]:
    from sandbox.image import aci
    a = ws.answers()
    pred = a.get("predictions")
    ok = isinstance(pred, dict) and set(CHANGES) <= set(pred)
    yield gate(CHECKS[0], ok,
               "record your predictions first: ws.answer('predictions', {change: True/False}) "
               f"for each of {', '.join(CHANGES)} — True when you expect the ID to change"
               + (f" (missing: {', '.join(sorted(set(CHANGES) - set(pred)))})" if isinstance(pred, dict) else ""))
    if not ok:
        return
    res = _results(ws)
    if res is None:
        yield gate("the experiments ran", False, "run the experiments cell: lab1.experiments(ws)")
        return
    wrong = [k for k in CHANGES if bool(pred[k]) != (res["ids"][k] != res["base"])]
    hint = "; ".join(f"{k}: the ID {'changed' if res['ids'][k] != res['base'] else 'stayed the same'} "
                     f"— {WHY[k]}" for k in wrong)
    yield Result(CHECKS[1], not wrong, hint)
    t = ws._read("answers.json").get("predictions", {}).get("time")
    if t and t > res.get("time", 0):
        yield Result("predicted before the experiments", True,
                     "you changed your predictions after the experiments ran; next time, commit first",
                     "advice")
    out = ws.path / "hello.aci"
    mine = a.get("image_id")
    if not out.is_file() or not mine:
        yield Result(CHECKS[2], False, "no ID recorded yet: undo the compression of hello.aci, hash "
                     "the tar with hashlib.sha512 and give it with ws.answer('image_id', …)")
    else:
        real = aci.image_id(out)
        raw = "sha512-" + hashlib.sha512(out.read_bytes()).hexdigest()
        hint = ""
        if mine != real:
            if mine in (raw, raw[len("sha512-"):]):
                hint = ("you hashed the file as it is on disk (gzip-compressed); the image ID is "
                        "the SHA-512 of the *uncompressed* tar")
            elif isinstance(mine, str) and mine == real[len("sha512-"):]:
                hint = "the right digest — but an image ID is written 'sha512-' followed by it"
            elif not str(mine).startswith("sha512-"):
                hint = "an image ID is 'sha512-' followed by 128 lowercase hex digits"
            else:
                hint = f"your ID {str(mine)[:23]}… differs from the archive's {real[:23]}…"
        yield Result(CHECKS[2], mine == real, hint)
    d = ws.path / "mystery"
    found = a.get("mystery")
    try:
        answer = set(json.loads((d / "answer.json").read_text()))
    except (OSError, ValueError):
        yield Result(CHECKS[3], False, "run the cell that makes the mystery archives: lab1.mystery(ws)")
        return
    found = set(found or [])
    hint = ""
    if found != answer:
        target = (d / "target").read_text()
        parts = []
        for name in sorted(found - answer):
            parts.append(f"{name} is {aci.image_id(d / name)[:23]}…, not the target — one tar header "
                         "differs (a file's mode)")
        missed = sorted(answer - found)
        if missed:
            comp = {n: aci.detect_compression(d / n) for n in missed}
            parts.append("you missed " + ", ".join(f"{n} ({comp[n]})" for n in missed)
                         + f": decompressed, it is the same tar as the target {target[:23]}…")
        hint = "; ".join(parts) or "record the file names, e.g. {'mystery-a.aci'}"
    yield Result(CHECKS[3], found == answer, hint)


def mistake(ws: Workspace) -> str:
    """A mistake learners make on the finished lab (the tests make it; so can an instructor):
    expect recompression to change the ID. Returns what the check then says."""
    p = dict(ws.answers()["predictions"])
    p["recompress"] = True
    ws.answer("predictions", p)
    return "recompress: the ID stayed the same"
