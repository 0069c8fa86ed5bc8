"""Lab 1: build your first ACI and compute its image ID by hand (slides 11–14, 25–29; aci.md).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from sandbox.course.labs import LabError, Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo

NUMBER = 1
SLUG = "first-aci"
TITLE = "Your first ACI, and its image ID by hand"
FOLLOWS = "01"
INTRO = """
Slides 11–14: *your container image* is a filesystem plus what to run, and it has a name
(`example.com/app`) and an ID (`d474e8c57737625c`). In appc (spec `aci.md`) the image is a tar
holding a `manifest` and a `rootfs/`, and its **image ID** is `sha512-` followed by the SHA-512 of
the *uncompressed* tar. You will build one and compute that ID yourself."""

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    "the layout's manifest is valid",
    'hello.aci is a valid ACI',
    'your hand-computed image ID equals sandbox.image.aci.image_id',
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = 'the manifest is not valid yet'

CELLS = [
    *header(NUMBER, TITLE, INTRO),
    code('''
import gzip
import hashlib
import json

from sandbox.image import aci

from sandbox.course import labs
from sandbox.course.labs import lab1
ws = labs.workspace(1)          # $SANDBOX_DIR/labs/01: everything this lab makes lives here
layout = ws.path / "hello"
ws
'''),
    md("## 1. The layout: `rootfs/` …\n\nThe files the app will see. This part is done for you."),
    code('''
(layout / "rootfs").mkdir(parents=True, exist_ok=True)
(layout / "rootfs" / "hello.txt").write_text("Hello, world!\\n")
sorted(p.relative_to(layout).as_posix() for p in layout.rglob("*"))
'''),
    md("## 2. … and the `manifest`\n\n**TODO**: an ImageManifest needs `acKind`, `acVersion` and "
       "a `name`; give it the name `example.com/hello` and a `version` label `1.0.0`."),
    todo('''
manifest = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": "example.com/hello",
    "labels": [{"name": "version", "value": "1.0.0"}],
}
''', '''
manifest = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    # TODO: add "name": "example.com/hello" and "labels": [{"name": "version", "value": "1.0.0"}]
}
'''),
    code('''
(layout / "manifest").write_text(json.dumps(manifest, indent=2))
aci.validate_layout(layout)      # [] means valid
'''),
    md("## 3. Build the ACI\n\n**TODO**: build `hello.aci` in the workspace with "
       "`aci.build(layout, out)` (it writes a gzip-compressed tar and returns the image ID)."),
    todo('''
built_id = aci.build(layout, ws.path / "hello.aci", overwrite=True)
''', '''
built_id = None  # TODO: aci.build(layout, ws.path / "hello.aci", overwrite=True)
'''),
    md("## 4. The image ID, by hand\n\n**TODO**: open `hello.aci` with `gzip.open` (the ID is over "
       "the *uncompressed* tar), feed every byte to `hashlib.sha512`, and record "
       "`\"sha512-\" + hexdigest` with `ws.answer(\"image_id\", …)`."),
    todo('''
with gzip.open(ws.path / "hello.aci", "rb") as f:
    my_id = "sha512-" + hashlib.sha512(f.read()).hexdigest()
ws.answer("image_id", my_id)
''', '''
my_id = None  # TODO: "sha512-" + the hex SHA-512 of the uncompressed tar
ws.answer("image_id", my_id)
'''),
    *footer(NUMBER)[:2],
    md("The kit agrees (and so does `sha512sum` of `zcat hello.aci`): the short form appc prints "
       "is the first 32 hex digits."),
    code('lab1.kit_image_id(ws)'),
    *footer(NUMBER)[2:],
]


def kit_image_id(ws: Workspace) -> tuple[str, str] | str:
    """The kit's image ID of the lab's hello.aci and its short form (or why there is none)."""
    from sandbox.image import aci
    from sandbox.errors import SandboxError
    out = ws.path / "hello.aci"
    if not out.is_file():
        return f"no {out.name} yet: build it first (step 3)"
    try:
        full = aci.image_id(out)
    except SandboxError as e:
        return f"{out.name} is not an ACI the kit can read: {e}"
    return full, aci.short_id(full)


def checks(ws: Workspace) -> Iterable[Result]:
    from sandbox.image import aci
    layout, out = ws.path / "hello", ws.path / "hello.aci"
    if not (layout / "manifest").is_file():
        yield gate("the layout has a manifest", False,
                    f"{layout}/manifest does not exist yet: write the manifest JSON there")
        return
    problems = aci.validate_layout(layout)
    yield gate("the layout's manifest is valid", not problems,
                "the manifest is not valid yet: " + "; ".join(problems[:3])
                + " (an ImageManifest needs acKind, acVersion and a name like example.com/hello)")
    if problems:
        return
    if not out.is_file():
        yield gate("hello.aci is built", False,
                    f"{out} does not exist yet: build it with aci.build(layout, ws.path / 'hello.aci')")
        return
    problems = aci.validate(out)
    yield gate("hello.aci is a valid ACI", not problems, "; ".join(problems[:3]))
    if problems:
        return
    real = aci.image_id(out)
    mine = ws.answers().get("image_id")
    if not mine:
        yield Result("your hand-computed image ID is recorded", False,
                     "no ID recorded yet: hash the uncompressed tar with hashlib.sha512 and give "
                     "it with ws.answer('image_id', 'sha512-' + hexdigest)")
        return
    raw = "sha512-" + hashlib.sha512(out.read_bytes()).hexdigest()
    hint = ""
    if mine != real:
        if mine in (raw, raw[len("sha512-"):]) and raw != real:
            hint = ("you hashed the file as it is on disk (gzip-compressed); the image ID is the "
                    "SHA-512 of the *uncompressed* tar — open it with gzip.open")
        elif not str(mine).startswith("sha512-"):
            hint = "an image ID is written 'sha512-' followed by 128 lowercase hex digits"
        else:
            hint = f"your ID {str(mine)[:23]}… differs from the archive's {real[:23]}…"
    yield Result("your hand-computed image ID equals sandbox.image.aci.image_id", mine == real, hint)


def flip_byte(src: str | os.PathLike[str], dst: str | os.PathLike[str], needle: bytes) -> int:
    """Copy ``src`` to ``dst`` with one byte changed: the first byte of ``needle``'s first
    occurrence gets its lowest bit flipped. Returns the offset."""
    data = bytearray(Path(src).read_bytes())
    i = data.find(needle)
    if i < 0:
        raise LabError(f"{needle!r} does not occur in {src}.")
    data[i] ^= 1
    Path(dst).write_bytes(bytes(data))
    return i


def compressed_sha512(path: str | os.PathLike[str]) -> str:
    """sha512 of a file exactly as stored (for comparing with the image ID)."""
    return "sha512-" + hashlib.sha512(Path(path).read_bytes()).hexdigest()


def mistake(ws: Workspace) -> str:
    """A mistake learners make on the finished lab (the tests make it; so can an instructor):
    hash the .aci as stored. Returns what the check then says."""
    ws.answer("image_id", compressed_sha512(ws.path / "hello.aci"))
    return "you hashed the file as it is on disk"
