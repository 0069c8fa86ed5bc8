"""Lab 10: an OCI image in your hands — export it, break a digest and watch skopeo refuse, find
the one change no digest covers, and bring back an umoci-made layer with whiteouts (slides
32–39; image-spec image-layout.md, descriptor.md, layer.md §Whiteouts).
"""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo
from sandbox.errors import SandboxError

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 10
SLUG = "oci-layout"
TITLE = "An OCI layout in your hands: break it, rename it, trim it"
FOLLOWS = "08"
OBJECTIVES = (
    'break one blob of an OCI layout and see which tool notices, and why',
    'find the one change to an image that no digest covers',
    'trim an image with umoci into a whiteout layer and import it back',
)
INTRO = """
An OCI image layout is a Merkle DAG: `index.json` points at a manifest by digest, the manifest
at a config and layers by digest, and every blob is a file named by its own digest. A tool that
reads it re-hashes what it reads. In this lab you export a small appc image as a layout, then
test that design with the real tools: skopeo (which re-hashes every blob while copying) and umoci
(which unpacks a layout into a bundle and packs your changes back as a new layer)."""

CHECKS = [
    "the image is exported as an OCI layout",
    "skopeo refuses the copy you broke",
    "skopeo accepts the copy you renamed — a change no digest covers",
    "your prediction of the trimmed image's layers is recorded",
    "umoci's new layer whites out what you deleted",
    "the ACI imported from the trimmed image lacks what you deleted",
]
STUDENT_HINT = "no OCI layout yet"

IMAGE = "example.com/lab10"
TAG = "1.0.0"

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
import json, shutil, subprocess
from sandbox import oci
from sandbox.course import labs
from sandbox.course.labs import lab10
from sandbox.image import aci
from sandbox.oci import docker

ws = labs.workspace(10)
store = lab10.setup(ws)          # example.com/lab10 1.0.0 (on example.com/lab10-base) in the lab's store
print(lab10.describe(store))
'''),
    md("""## 1. Export

Write `example.com/lab10` as an OCI image layout in `ws.path / "layout"` (notebook 08 §2 shows
the call; the tag is the version, `1.0.0`)."""),
    todo('''
exported = oci.export_image(store, "example.com/lab10", ws.path / "layout")
''', '''
'''),
    code('print(lab10.tree(ws.path / "layout"))'),
    md("""## 2. Break a digest

Copy the layout to `ws.path / "broken"` and change **one byte** in the copy so that skopeo
refuses to copy it (`docker.copy_check("oci:DIR:TAG")` returns skopeo's complaint, or None when
it accepts). Which byte, in which file, is up to you — think about which files a digest
covers."""),
    todo('''
shutil.copytree(ws.path / "layout", ws.path / "broken")
manifest = json.loads((ws.path / "broken" / "index.json").read_text())["manifests"][0]
blob = ws.path / "broken" / "blobs" / "sha256" / manifest["digest"].split(":")[1]
aci.flip_byte(blob)
print(docker.copy_check(f"oci:{ws.path / 'broken'}:1.0.0"))
''', '''
'''),
    md("""## 3. A change no digest covers

Now the opposite: copy the layout to `ws.path / "renamed"` and change it so that the image has
a different *name* (its tag) — and skopeo still copies it without a complaint. Record the new
tag with `ws.answer("new_tag", …)`. What does that say about where an OCI image's name lives?"""),
    todo('''
shutil.copytree(ws.path / "layout", ws.path / "renamed")
index = json.loads((ws.path / "renamed" / "index.json").read_text())
index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "evil"
(ws.path / "renamed" / "index.json").write_text(json.dumps(index))
ws.answer("new_tag", "evil")
print(docker.copy_check(f"oci:{ws.path / 'renamed'}:evil"))
''', '''
'''),
    md("""## 4. Trim it with umoci

`umoci unpack --image LAYOUT:TAG BUNDLE` applies the layers into `BUNDLE/rootfs`;
`umoci repack --image LAYOUT:NEWTAG BUNDLE` compares the rootfs with what was unpacked and
writes the difference as **one new layer** on top — deletions included, as *whiteouts* (a
`.wh.NAME` entry deletes `NAME` from the layers below; layer.md). Work on the original layout:

* first **predict** how many layers the image tagged `trimmed` will have, and record
  `ws.answer("trimmed_layers", n)`;
* then unpack `1.0.0` into `ws.path / "bundle"`, delete `/etc/motd` and the directory
  `/var/cache/lab10` from the bundle's rootfs, and repack it as `trimmed`."""),
    todo('''
ws.answer("trimmed_layers", 3)
layout = ws.path / "layout"
subprocess.run(["umoci", "unpack", "--image", f"{layout}:1.0.0", str(ws.path / "bundle")], check=True)
(ws.path / "bundle" / "rootfs" / "etc" / "motd").unlink()
shutil.rmtree(ws.path / "bundle" / "rootfs" / "var" / "cache" / "lab10")
subprocess.run(["umoci", "repack", "--image", f"{layout}:trimmed", str(ws.path / "bundle")], check=True)
''', '''
'''),
    md("""## 5. Back to appc

Import the `trimmed` image as an ACI (`oci.import_layout`, notebook 08 §6) into
`ws.path / "trimmed.aci"`; the importer applies the whiteouts. What is left?"""),
    todo('''
imported = oci.import_layout(f"{ws.path / 'layout'}:trimmed", ws.path / "trimmed.aci")
''', '''
'''),
    code('print(lab10.layers(ws.path / "layout", "trimmed"))'),
    *footer(NUMBER),
]


# ------------------------------------------------------------------------------- the lab's world


def setup(ws: Workspace) -> Any:
    """The lab's store (``ws/state``) with two images: ``example.com/lab10-base`` (``/etc``,
    ``/var/cache/lab10``) and ``example.com/lab10`` 1.0.0 on top of it (``/etc/motd``, its app)."""
    from sandbox.image import catalog
    from sandbox.image.store import Store
    store = Store(ws.path / "state")
    catalog.small_image(ws.path / "lab10-base.aci", "example.com/lab10-base",
                        {"etc/os-release": "NAME=lab10\n", "var/cache/lab10/index": "cached\n",
                         "var/cache/lab10/data": "more cache\n"}, import_to=store)
    catalog.small_image(ws.path / "lab10.aci", IMAGE,
                        {"etc/motd": "welcome to lab 10\n", "app/run": "#!/bin/sh\necho run\n"},
                        dependencies=["example.com/lab10-base"], import_to=store)
    return store


def describe(store: Any) -> str:
    return "\n".join(f"{i.name} {i.version}  deps={[d.image_name for d in i.manifest.dependencies]}"
                     for i in store.list())


def tree(layout: Path) -> str:
    """index.json → manifest → config + layers, each with its digest (or why not)."""
    from sandbox import oci
    try:
        lay = oci.Layout(layout)
        lines = []
        for m in lay.index().get("manifests", []):
            tag = m.get("annotations", {}).get(oci.REF_NAME, "?")
            man = json.loads(lay.read_blob(m))
            lines.append(f"tag {tag} → manifest {m['digest'][:19]}…")
            lines.append(f"    config {man['config']['digest'][:19]}…")
            lines += [f"    layer  {l['digest'][:19]}… ({l['size']} bytes)" for l in man["layers"]]
        return "\n".join(lines)
    except SandboxError as e:
        return f"not a readable layout: {e}"


def layers(layout: Path, tag: str) -> str:
    """The entries of each layer of ``tag``, whiteouts marked."""
    from sandbox import oci
    try:
        return "\n".join(f"layer {i + 1}: " + ", ".join(
            f"{n} (whiteout: deletes {_whited(n)})" if _whited(n) else n for n in names)
                         for i, names in enumerate(_layer_entries(layout, tag)))
    except (SandboxError, KeyError, OSError) as e:
        return f"cannot read {tag}: {e}"


def _whited(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    if base.startswith(".wh.") and base != ".wh..wh..opq":
        return name[: len(name) - len(base)] + base[4:]
    return None


def _layer_entries(layout: Path, tag: str) -> list[list[str]]:
    import gzip
    from sandbox import oci
    lay = oci.Layout(layout)
    man = json.loads(lay.read_blob(lay.resolve(tag)))
    out = []
    for l in man["layers"]:
        data = lay.read_blob(l)
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            out.append(["/" + m.name.lstrip("./").rstrip("/") for m in t])
    return out


# ------------------------------------------------------------------------------- the checks


def checks(ws: Workspace) -> Iterable[Result]:
    # Long on purpose: the lab's table of checks, in the order the learner meets them.
    from sandbox import oci
    from sandbox.image import aci
    from sandbox.oci import docker
    layout = ws.path / "layout"
    try:
        lay = oci.Layout(layout)
        desc = lay.resolve(TAG)
        man = json.loads(lay.read_blob(desc))
    except (SandboxError, OSError, ValueError) as e:
        yield gate(CHECKS[0], False, f"no OCI layout yet at {layout} (or not a readable one: {e}); "
                   "export example.com/lab10 there")
        return
    yield gate(CHECKS[0], True)
    n_orig = len(man["layers"])
    broken = ws.path / "broken"
    if not (broken / "index.json").is_file():
        yield Result(CHECKS[1], False, "no copy at ws.path / 'broken' yet")
    else:
        said = docker.copy_check(f"oci:{broken}:{TAG}")
        hint = ""
        if said is None:
            changed = _changed_files(layout, broken)
            hint = ("skopeo copied it without a complaint: "
                    + (f"you changed {', '.join(changed)}, and no digest covers that — "
                       "change a blob (a file under blobs/)" if changed else
                       "the copy is identical to the layout; change one byte of a blob"))
        yield Result(CHECKS[1], said is not None, hint)
    renamed = ws.path / "renamed"
    new_tag = ws.answers().get("new_tag")
    if not (renamed / "index.json").is_file() or not new_tag:
        yield Result(CHECKS[2], False, "no copy at ws.path / 'renamed' with a recorded new tag "
                     "(ws.answer('new_tag', …)) yet")
    else:
        said = docker.copy_check(f"oci:{renamed}:{new_tag}")
        blobs_same = _changed_files(layout, renamed) == ["index.json"]
        hint = ""
        if new_tag == TAG:
            hint = "the tag is still 1.0.0: give the image another name"
        elif said is not None:
            hint = (f"skopeo refused ({said}): " + ("a digest covers what you changed — the name "
                    "lives in a file no digest names" if not blobs_same else "the tag you recorded "
                    "is not the one in index.json"))
        yield Result(CHECKS[2], not hint, hint)
    pred = ws.answers().get("trimmed_layers")
    yield gate(CHECKS[3], isinstance(pred, int),
               "predict the number of layers the trimmed image will have, before you repack: "
               "ws.answer('trimmed_layers', n)")
    if not isinstance(pred, int):
        return
    try:
        entries = _layer_entries(layout, "trimmed")
    except (SandboxError, KeyError, OSError, ValueError):
        yield Result(CHECKS[4], False, "there is no image tagged 'trimmed' in the layout yet: unpack "
                     "1.0.0 with umoci, delete, repack as trimmed")
        return
    top = entries[-1] if entries else []
    wanted = {"/etc/motd", "/var/cache/lab10"}
    whited = {_whited(n) for n in top} - {None}
    missing = sorted(wanted - whited)
    hint = ""
    if len(entries) != n_orig + 1:
        hint = f"trimmed has {len(entries)} layers; umoci repack adds exactly one to the {n_orig} of 1.0.0"
    elif missing:
        hint = ("the new layer has no whiteout for " + ", ".join(missing)
                + f" (its entries: {', '.join(top[:8])})")
    yield Result(CHECKS[4], not hint, hint)
    if pred != len(entries):
        yield Result("your layer prediction", True,
                     f"you predicted {pred} layers; trimmed has {len(entries)}: the {n_orig} of 1.0.0 "
                     "(one per appc image of the override order) and umoci's one on top", "advice")
    aci_path = ws.path / "trimmed.aci"
    if not aci_path.is_file():
        yield Result(CHECKS[5], False, "import the trimmed image as an ACI: oci.import_layout(…, "
                     "ws.path / 'trimmed.aci')")
        return
    with aci.open_tar(aci_path) as t:
        names = {"/" + m.name[len("rootfs/"):] for m in t if m.name.startswith("rootfs/")}
    left = sorted(p for p in names if p in wanted or p.startswith("/var/cache/lab10/"))
    yield Result(CHECKS[5], not left and "/app/run" in names,
                 f"still in the ACI: {', '.join(left)} — was it imported from 'trimmed'?" if left else
                 "the ACI lost /app/run too: import the trimmed tag, not an empty one")


def _changed_files(a: Path, b: Path) -> list[str]:
    """Relative paths whose bytes differ between two layout directories."""
    out = []
    for p in sorted(b.rglob("*")):
        if p.is_file():
            q = a / p.relative_to(b)
            if not q.is_file() or q.read_bytes() != p.read_bytes():
                out.append(str(p.relative_to(b)))
    return out


def reset(ws: Workspace) -> list[str]:
    """The trees the export rendered (the tree store is shared; the lab's images are not)."""
    return _remove_trees(ws)


def _remove_trees(ws: Workspace) -> list[str]:
    from sandbox.image.store import Store
    from sandbox.render import treestore
    done = []
    for img in Store(ws.path / "state").list():
        for t in treestore.trees_of(img.id):
            try:
                treestore.remove(t)
                done.append(f"removed the rendered tree of {img.name}")
            except SandboxError:
                pass
    return done


def mistake(ws: Workspace) -> str:
    """A mistake learners make: "break" the layout by editing index.json (no digest covers it).
    Returns what the check then says."""
    broken = ws.path / "broken"
    shutil.rmtree(broken)
    shutil.copytree(ws.path / "layout", broken)
    index = json.loads((broken / "index.json").read_text())
    index["manifests"][0].setdefault("annotations", {})["org.example.note"] = "changed"
    (broken / "index.json").write_text(json.dumps(index))
    return "no digest covers that"
