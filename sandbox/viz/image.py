"""Pictures and widgets for the image format (notebook 01).

* :func:`archive_tree` - the layers of an ACI file: compression -> tar -> manifest + rootfs tree.
* :func:`flipped_id` / :func:`flip_byte_widget` - flip one byte of the uncompressed tar and watch
  the image ID change (content addressing).
* :func:`compression_table` - one layout, four compressions, a size each, one ID.
"""
from __future__ import annotations

import hashlib
import html
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import graphviz

from sandbox.image import aci
from sandbox.viz import HtmlTable, Svg, color_for, digraph

KINDS = ["file", "dir", "symlink", "hardlink", "device", "fifo"]


def _kind(m: tarfile.TarInfo) -> str:
    return ("dir" if m.isdir() else "file" if m.isreg() else "symlink" if m.issym()
            else "hardlink" if m.islnk() else "fifo" if m.isfifo() else "device")


def archive_tree(path: str | Path, *, max_children: int = 8, max_depth: int = 4) -> graphviz.Digraph:
    """The ACI as layers: the file (with its compression), the tar, then its entry tree.

    Directories with more than ``max_children`` entries show the first few and "+N more".
    """
    path = Path(path)
    comp = aci.detect_compression(path)
    iid = aci.image_id(path)
    entries: list[tuple[str, str, str]] = []   # (name, kind, detail)
    with aci.open_tar(path) as t:
        for m in t:
            name = aci.normalize_entry(m.name) or m.name
            detail = (f"{m.size:,} B" if m.isreg() else f"-> {m.linkname}" if m.issym() or m.islnk()
                      else "")
            entries.append((name, _kind(m), detail))
    g = digraph("aci", rankdir="LR")
    g.attr(label=f"{path.name}: {aci.short_id(iid)}…", labelloc="t")
    g.node("file", f"{path.name}\n{path.stat().st_size:,} bytes\ncompression: {comp}",
           shape="folder", fillcolor="#eeeeee")
    g.node("tar", f"uncompressed tar\nsha512 -> image ID\n{aci.short_id(iid)}…",
           shape="cylinder", fillcolor="#ffffff")
    g.edge("file", "tar", label="decompress" if comp != "none" else "as is")
    children: dict[str, list[tuple[str, str, str]]] = {}
    for name, kind, detail in entries:
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        children.setdefault(parent, []).append((name, kind, detail))

    def node_id(name: str) -> str:
        return "e_" + hashlib.sha1(name.encode()).hexdigest()[:12]

    def add(parent_node: str, parent: str, depth: int) -> None:
        kids = children.get(parent, [])
        for name, kind, detail in kids[:max_children]:
            label = name.rsplit("/", 1)[-1] + ("/" if kind == "dir" else "")
            if detail:
                label += f"\n{detail}"
            g.node(node_id(name), label, fillcolor=color_for(kind, KINDS),
                   shape="note" if name == "manifest" else "box")
            g.edge(parent_node, node_id(name))
            if kind == "dir" and depth < max_depth:
                add(node_id(name), name, depth + 1)
            elif kind == "dir" and children.get(name):
                more = f"{node_id(name)}_deeper"
                g.node(more, f"{len(children[name])} entries…", shape="plaintext", style="")
                g.edge(node_id(name), more, style="dashed")
        if len(kids) > max_children:
            more = f"{parent_node}_more"
            g.node(more, f"+{len(kids) - max_children} more", shape="plaintext", style="")
            g.edge(parent_node, more, style="dashed")

    add("tar", "", 0)
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(label="entry types", fontsize="9", style="dashed")
        for k in sorted({k for _, k, _ in entries}, key=KINDS.index):
            lg.node(f"legend_{k}", k, fillcolor=color_for(k, KINDS), fontsize="9")
    return g


def uncompressed_bytes(path: str | Path) -> bytes:
    """The whole uncompressed tar (for small teaching images only)."""
    with aci.open_uncompressed(path) as (s, _):
        return s.read()


def byte_owner(tar_bytes: bytes, offset: int) -> str:
    """Which part of the tar holds byte ``offset``: an entry's header, its data, or padding."""
    import io
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        for m in t.getmembers():
            if m.offset <= offset < m.offset_data:
                return f"the header of {m.name}"
            end = m.offset_data + m.size
            if m.offset_data <= offset < end:
                return f"the content of {m.name} (byte {offset - m.offset_data})"
            if m.size and end <= offset < m.offset_data + ((m.size + 511) // 512) * 512:
                return f"the zero padding after {m.name}"
    return "the end-of-archive zero blocks"


def flipped_id(tar_bytes: bytes, offset: int) -> dict[str, Any]:
    """The image ID before and after inverting the bits of one byte of the uncompressed tar."""
    if not 0 <= offset < len(tar_bytes):
        raise ValueError(f"offset {offset} is outside the tar (0..{len(tar_bytes) - 1})")
    flipped = bytearray(tar_bytes)
    flipped[offset] ^= 0xFF
    before = "sha512-" + hashlib.sha512(tar_bytes).hexdigest()
    after = "sha512-" + hashlib.sha512(bytes(flipped)).hexdigest()
    differing = sum(a != b for a, b in zip(before[7:], after[7:]))
    return {"offset": offset, "where": byte_owner(tar_bytes, offset), "before": before,
            "after": after, "hex_digits_changed": differing,
            "byte": f"0x{tar_bytes[offset]:02x} -> 0x{flipped[offset]:02x}"}


def flip_html(r: dict[str, Any]) -> str:
    e = html.escape
    marked = "".join(f"<b style='color:#D55E00'>{c}</b>" if c != d else c
                     for c, d in zip(r["after"], r["before"]))
    return (f"<div>byte {r['offset']} ({e(r['where'])}): {e(r['byte'])}<br>"
            f"<code>before {e(r['before'][:71])}…</code><br><code>after&nbsp; {marked[:2000]}</code><br>"
            f"{r['hex_digits_changed']} of 128 hex digits changed</div>")


def on_flip(tar_bytes: bytes, offset: int, out: Any) -> None:
    """The widget's callback: recompute the ID and show it (kept here, not in a notebook cell)."""
    out.value = flip_html(flipped_id(tar_bytes, offset))


def flip_byte_widget(path: str | Path) -> Any:
    """A slider over the uncompressed tar of ``path``; moving it flips that byte and shows the
    new image ID next to the real one."""
    import ipywidgets as w
    data = uncompressed_bytes(path)
    slider = w.IntSlider(value=min(600, len(data) - 1), min=0, max=len(data) - 1,
                         description="byte", continuous_update=False,
                         layout=w.Layout(width="90%"))
    out = w.HTML()
    slider.observe(lambda ch: on_flip(data, ch["new"], out), names="value")
    on_flip(data, slider.value, out)
    return w.VBox([slider, out])


def compression_table(layout: str | Path, workdir: str | Path | None = None) -> list[dict[str, Any]]:
    """Build ``layout`` with every compression: the sizes differ, the image ID does not."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="sbx-comp-", dir=workdir) as d:
        for c in aci.COMPRESSIONS:
            out = Path(d) / f"image-{c}.aci"
            iid = aci.build(layout, out, compression=c)
            rows.append({"compression": c, "detected": aci.detect_compression(out),
                         "size": out.stat().st_size, "image_id": iid,
                         "first_bytes": out.read_bytes()[:6].hex(" ")})
    return rows


def rows_html(rows: list[dict[str, Any]]) -> str:
    """A small HTML table of dict rows (image IDs shortened)."""
    if not rows:
        return "<p>(nothing)</p>"
    cols = list(rows[0])
    e = html.escape

    def cell(v: Any) -> str:
        s = str(v)
        if s.startswith("sha512-") and len(s) > 50:
            return f"<code title='{e(s)}'>{e(aci.short_id(s))}…</code>"
        return e(f"{v:,}" if isinstance(v, int) else s)

    head = "".join(f"<th>{e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


HOSTILE_KINDS = ("traversal", "absolute", "symlink-escape", "hardlink-escape", "setuid")


def hostile_archive(path: str | Path, kind: str) -> Path:
    """A small hostile ACI for the notebook's safety demo (plain tar, valid manifest).

    ``traversal``: ``rootfs/../../evil``; ``absolute``: ``/tmp/evil``; ``symlink-escape``: a
    symlink to /tmp then a file written "through" it; ``hardlink-escape``: a hard link to
    /etc/passwd; ``setuid``: a setuid-root file (kept out unless asked).
    """
    import io
    import json as _json
    if kind not in HOSTILE_KINDS:
        raise ValueError(f"kind must be one of {HOSTILE_KINDS}")
    path = Path(path)
    manifest = _json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                            "name": f"example.com/hostile-{kind}"}).encode()

    def add(t: tarfile.TarFile, name: str, data: bytes = b"", **kw: Any) -> None:
        ti = tarfile.TarInfo(name)
        for k, v in kw.items():
            setattr(ti, k, v)
        if ti.isreg():
            ti.size = len(data)
        t.addfile(ti, io.BytesIO(data) if ti.isreg() else None)

    with tarfile.open(path, "w") as t:
        add(t, "manifest", manifest)
        add(t, "rootfs", type=tarfile.DIRTYPE, mode=0o755)
        if kind == "traversal":
            add(t, "rootfs/../../evil", b"pwned\n")
        elif kind == "absolute":
            add(t, "/tmp/sbx-evil", b"pwned\n")
        elif kind == "symlink-escape":
            add(t, "rootfs/tmp", type=tarfile.SYMTYPE, linkname="/tmp")
            add(t, "rootfs/tmp/sbx-evil", b"pwned\n")
        elif kind == "hardlink-escape":
            add(t, "rootfs/passwd", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        elif kind == "setuid":
            add(t, "rootfs/rootshell", b"#!/bin/sh\n", mode=0o4755)
    return path


def link_over_dir_archive(path: str | Path, target: str | Path) -> Path:
    """The hostile image of notebook 01 §11 (docs/security.md): ``rootfs/a/b/`` with mode 0777
    and owner 4242, then ``rootfs/a`` as a symlink to ``target``. A renderer that set directory
    modes by path at the end of the archive would chmod/chown ``target/b`` on the host."""
    import io
    import json as _json
    path = Path(path)
    manifest = _json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                            "name": "example.com/hostile-link-over-dir"}).encode()
    with tarfile.open(path, "w") as t:
        ti = tarfile.TarInfo("manifest")
        ti.size = len(manifest)
        t.addfile(ti, io.BytesIO(manifest))
        for name, kw in (("rootfs", {"mode": 0o755}),     # no entry for a/: b implies it
                         ("rootfs/a/b", {"mode": 0o777, "uid": 4242, "gid": 4242})):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            for k, v in kw.items():
                setattr(ti, k, v)
            t.addfile(ti)
        ti = tarfile.TarInfo("rootfs/a")        # then a link where that directory is
        ti.type, ti.linkname = tarfile.SYMTYPE, str(target)
        t.addfile(ti)
    return path


# -- hashing, step by step (notebook 01) ---------------------------------------------------------

def _film_states(steps: Any, k: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``tar`` states of the hashing that step ``k`` belongs to, up to k, and its last one."""
    from sandbox.viz.stepper import last_state
    j, _ = last_state(steps, k, "tar")
    path = steps[j].after["path"]
    # the hashing run: consecutive tar steps of the same file around j
    start = j
    while start > 0 and steps[start - 1].after and steps[start - 1].after.get("kind") == "tar" \
            and steps[start - 1].after["path"] == path and steps[start - 1].after["entry"]["type"] != "id":
        start -= 1
    end = j
    while end + 1 < len(steps) and steps[end + 1].after and steps[end + 1].after.get("kind") == "tar" \
            and steps[end + 1].after["path"] == path and steps[end].after["entry"]["type"] != "id":
        end += 1
    return [steps[i].after for i in range(start, j + 1)], steps[end].after


def tar_picture(states: list[dict[str, Any]], last: dict[str, Any]) -> Svg:
    """The hashing so far: the file on disk (what a signature covers), the tar stream in
    512-byte blocks (what the image ID covers: hashed ones filled, the current entry outlined),
    and the SHA-512 of what was hashed so far — the image ID once the stream ends."""
    # Long on purpose: one SVG picture drawn in reading order (file, 512-byte blocks, SHA-512).
    from sandbox.palette import kind_color
    now, hashed, signed = kind_color("now"), kind_color("hashed"), kind_color("signed")
    st = states[-1]
    total_blocks = max(1, last["offset"] // 512)
    per = max(1, -(-total_blocks // 320))             # blocks per square, at most 320 squares
    squares = -(-total_blocks // per)
    cols, cell, gap, x0 = 40, 16, 2, 20
    rows = -(-squares // cols)
    kind_of: dict[int, str] = {}                      # square -> header | data | end
    current: set[int] = set()
    for s in states:
        e = s["entry"]
        first = e["at"] // 512
        for b in range(e["header_blocks"]):
            kind_of.setdefault((first + b) // per, "header")
        for b in range(e["data_blocks"]):
            kind_of.setdefault((first + e["header_blocks"] + b) // per,
                               "end" if e["type"] in ("end", "raw") else "data")
    e = st["entry"]
    for b in range(e["header_blocks"] + e["data_blocks"]):
        current.add((e["at"] // 512 + b) // per)
    fill = {"header": hashed, "data": hashed + "99", "end": hashed + "44"}
    width = x0 * 2 + cols * (cell + gap)
    y_file, y_grid = 50, 128
    y_sha = y_grid + rows * (cell + gap) + 40
    height = y_sha + 96
    name = html.escape(Path(st["path"]).name)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="Helvetica,Arial,sans-serif" font-size="12">',
           '<defs><marker id="arr" markerWidth="8" markerHeight="8" refX="6" refY="4" orient="auto">'
           '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>']
    # the file on disk: every byte is what a detached signature covers
    bar = width - 2 * x0
    read = min(1.0, st["read"] / max(1, st["size"]))
    out.append(f'<text x="{x0}" y="{y_file - 8}"><tspan font-weight="bold">{name}</tspan> on disk: '
               f'{st["size"]:,} bytes ({html.escape(st["compression"])}) — a signature '
               f'({name}.asc) covers every one of them</text>')
    out.append(f'<rect x="{x0}" y="{y_file}" width="{bar}" height="18" fill="{signed}" '
               f'fill-opacity="0.25" stroke="{signed}"/>')
    out.append(f'<rect x="{x0}" y="{y_file}" width="{bar * read:.1f}" height="18" fill="{signed}" '
               f'fill-opacity="0.75"/>')
    out.append(f'<text x="{x0 + 6}" y="{y_file + 13}" fill="white" font-size="11">read by the '
               f'decompressor so far: {st["read"]:,} bytes</text>')
    out.append(f'<line x1="{width / 2}" y1="{y_file + 22}" x2="{width / 2}" y2="{y_grid - 30}" '
               f'stroke="#555" marker-end="url(#arr)"/>')
    verb = "as it is" if st["compression"] == "none" else f"decompress ({st['compression']})"
    out.append(f'<text x="{width / 2 + 8}" y="{y_file + 44}" fill="#555" font-size="11">{verb}</text>')
    unit = "1 block" if per == 1 else f"{per} blocks"
    out.append(f'<text x="{x0}" y="{y_grid - 10}">the tar stream: {last["offset"]:,} bytes = '
               f'{total_blocks} blocks of 512 (one square = {unit}); hashed: '
               f'{st["offset"]:,} bytes</text>')
    for i in range(squares):
        x = x0 + (i % cols) * (cell + gap)
        y = y_grid + (i // cols) * (cell + gap)
        k = kind_of.get(i)
        color = fill[k] if k else "white"
        stroke, sw = (now, 2.2) if i in current else ("#999999", 0.6)
        out.append(f'<rect class="block" x="{x}" y="{y}" width="{cell}" height="{cell}" '
                   f'fill="{color}" stroke="{stroke}" stroke-width="{sw}"/>')
    out.append(f'<line x1="{width / 2}" y1="{y_sha - 34}" x2="{width / 2}" y2="{y_sha - 6}" '
               f'stroke="#555" marker-end="url(#arr)"/>')
    out.append(f'<text x="{width / 2 + 8}" y="{y_sha - 18}" fill="#555" font-size="11">every '
               f'byte, in order</text>')
    done = st.get("image_id")
    digest = st["digest"]
    box_stroke = now if done else "#333333"
    out.append(f'<rect x="{x0}" y="{y_sha}" width="{bar}" height="62" rx="6" fill="{hashed}" '
               f'fill-opacity="{0.35 if done else 0.12}" stroke="{box_stroke}" '
               f'stroke-width="{2.2 if done else 1}"/>')
    title = ("image ID = sha512- + the SHA-512 of the whole stream" if done else
             f"SHA-512 of the first {st['offset']:,} bytes (the running hash)")
    out.append(f'<text x="{x0 + 10}" y="{y_sha + 18}" font-weight="bold">{title}</text>')
    shown = ("sha512-" if done else "") + digest
    for n, part in enumerate((shown[:68], shown[68:])):
        out.append(f'<text x="{x0 + 10}" y="{y_sha + 36 + 15 * n}" font-family="Courier,monospace" '
                   f'font-size="11">{html.escape(part)}</text>')
    # legend
    ly = height - 10
    for j, (label, c) in enumerate((("header block", fill["header"]), ("data blocks", fill["data"]),
                                    ("end-of-archive zeros", fill["end"]), ("not hashed yet", "white"),
                                    ("this step", None))):
        x = x0 + j * 150
        out.append(f'<rect x="{x}" y="{ly - 10}" width="11" height="11" fill="{c or "white"}" '
                   f'stroke="{now if c is None else "#999999"}" stroke-width="{2 if c is None else 0.8}"/>')
        out.append(f'<text x="{x + 15}" y="{ly}" font-size="11">{label}</text>')
    out.append("</svg>")
    return Svg("\n".join(out))


def hash_frame(steps: Any, k: int) -> Any:
    """The stepper's picture for the image ID being computed (states of kind ``tar``)."""
    from sandbox.viz.stepper import Frame
    states, last = _film_states(steps, k)
    e = states[-1]["entry"]
    note = ""
    if e["type"] not in ("id", "end", "raw"):
        note = (f"<div style='color:#555;margin-bottom:4px'>{e['type']} entry: 1 header block at "
                f"byte {e['at']:,}, then {e['data_blocks']} data block(s) for {e['size']:,} "
                f"bytes (the last one padded with zeros)</div>")
    return Frame([tar_picture(states, last)], note=note)


def which_breaks(path: str | Path, key: Any, work: str | Path) -> HtmlTable:
    """Flip one byte in a few places of an ACI and ask both checks: does the image ID change, and
    does a detached signature over the file (made with ``key``) still verify? The signature
    covers the compressed file as it is on disk; the image ID only the tar inside."""
    from sandbox.trust import pgp
    path, work = Path(path), Path(work)
    data = path.read_bytes()
    sig = pgp.sign(path, key)
    ring = [key.public()]
    original = aci.image_id(path)
    comp = aci.detect_compression(path)
    tar = uncompressed_bytes(path)
    cases: list[tuple[str, bytes]] = []
    if comp == "gzip":
        cases.append(("gzip header, byte 9 (the OS field: not part of the content)",
                      data[:9] + bytes([data[9] ^ 0xFF]) + data[10:]))
        mid = len(data) // 2
        cases.append((f"compressed data, byte {mid}", data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1:]))
    for offset in (0, 512 + 2):          # the first header's name; the manifest's content
        flipped = bytearray(tar)
        flipped[offset] ^= 0x20
        cases.append((f"tar byte {offset}, {byte_owner(tar, offset)} (then compressed again)",
                      aci.compress(bytes(flipped), comp)))
    rows = []
    for where, changed in cases:
        target = work / "flipped.aci"
        target.write_bytes(changed)
        try:
            iid = aci.image_id(target)
            id_verdict = "same" if iid == original else "CHANGED"
        except Exception:  # noqa: BLE001 - a broken archive is one of the answers
            id_verdict = "unreadable (the decompressor refuses it)"
        try:
            pgp.verify(target, sig, ring)
            sig_verdict = "valid"
        except pgp.SignatureError:
            sig_verdict = "BROKEN"
        rows.append([where, id_verdict, sig_verdict])
    return HtmlTable(["flipped byte", "image ID", "signature over the .aci"], rows,
                     title=f"{path.name}: which check notices a flipped byte")
