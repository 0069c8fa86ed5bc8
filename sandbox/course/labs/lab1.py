"""Lab 1: build your first ACI and compute its image ID by hand (slides 25–29; aci.md).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from sandbox.course.labs import LabError, Result, Workspace, checks_for, gate


@checks_for(1)
def _checks_1(ws: Workspace) -> Iterable[Result]:
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
