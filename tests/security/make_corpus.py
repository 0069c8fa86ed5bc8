"""The hostile-archive corpus: every case an image author could try on the kit's host-side file
handling, written as data, with the verdict each pipeline must give.

    .venv/bin/python tests/security/make_corpus.py OUT_DIR --canary /path/outside

writes ``OUT_DIR/<case>/image-<n>.aci`` (the archives, a dependency chain when there are
several: the first is the lowest), ``OUT_DIR/<case>/layer-<n>.tar`` (the same entries as OCI
layers) and ``OUT_DIR/cases.json``. Links and names that point at the host point at the canary
directory given (tests/security/test_corpus.py makes one in a temporary directory and checks,
after every case, that it kept its contents, modes and owners and that nothing appeared beside
it).

A case: ``layers`` (one list of entries per archive), ``verdict`` (``refused`` or ``ok``, or a
dict per pipeline: ``aci`` extraction of each archive in turn into one directory, ``render`` of
the last image with the others as its dependency chain, ``oci`` import of the layers) and, for
``ok``, ``expect``: what the resulting tree holds (``dir``, ``file``, ``symlink:<target>``,
``fifo`` or ``absent``). An entry: ``name`` (below ``rootfs/``; ``raw`` names are written as they
are), ``type`` (file, dir, sym, lnk, fifo, chr, blk), ``data``, ``linkname`` (a hard link's is
below ``rootfs/`` too unless ``rawlink``), ``mode``, ``uid``, ``gid``, ``mtime``, ``pax``.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

C = "{canary}"                 # replaced by the canary directory's absolute path
NAME = "example.com/hostile"

DIR = {"type": "dir"}


def e(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, **kw}


CASES: list[dict[str, Any]] = [
    # -- names that leave the tree
    {"name": "absolute-name", "layers": [[e("/" + C.lstrip("/") + "/pwned", raw=True)]],
     "verdict": "refused"},
    {"name": "dotdot-name", "layers": [[e("rootfs/../../pwned", raw=True)]], "verdict": "refused"},
    {"name": "dotdot-in-the-middle", "layers": [[e("a", **DIR), e("a/../../../pwned")]],
     "verdict": "refused"},
    {"name": "dot-slash-dotdot", "layers": [[e("./rootfs/./../../pwned", raw=True)]],
     "verdict": "refused"},
    # -- symlinks: written through, climbing, chained
    {"name": "write-through-absolute-link",
     "layers": [[e("l", type="sym", linkname=C), e("l/pwned", data=b"pwned")]],
     "verdict": "refused"},
    {"name": "write-through-link-chain",
     "layers": [[e("a", type="sym", linkname="b"), e("b", type="sym", linkname=C),
                 e("a/pwned", data=b"pwned")]], "verdict": "refused"},
    {"name": "overwrite-through-link",
     "layers": [[e("l", type="sym", linkname=C + "/keep"), e("l", data=b"overwritten")]],
     "verdict": "refused"},
    {"name": "relative-link-climbing",
     "layers": [[e("a", **DIR), e("a/up", type="sym", linkname="../../../../../../../..")]],
     "verdict": "refused"},
    {"name": "relative-link-climbing-then-write",
     "layers": [[e("up", type="sym", linkname="../.."), e("up/pwned")]], "verdict": "refused"},
    {"name": "link-to-the-host-is-only-a-link",
     "layers": [[e("host", type="sym", linkname=C), e("rel", type="sym", linkname="etc/../x"),
                 e("etc", **DIR)]],
     "verdict": "ok", "expect": {"host": "symlink:" + C, "rel": "symlink:etc/../x", "etc": "dir"}},
    # -- the reported case: a directory, then a link over its parent (metadata by path)
    {"name": "dir-then-link-over-its-parent",
     "layers": [[e("a/b", type="dir", mode=0o777, uid=4242, gid=4242),
                 e("a", type="sym", linkname=C)]], "verdict": "refused"},
    {"name": "dir-then-link-over-itself",
     "layers": [[e("a", type="dir", mode=0o777), e("a", type="sym", linkname=C)]],
     "verdict": "refused"},
    {"name": "file-then-link-over-its-parent",
     "layers": [[e("a/f", data=b"x", mode=0o4777), e("a", type="sym", linkname=C)]],
     "verdict": "refused"},
    {"name": "setuid-dir-then-link-deep",
     "layers": [[e("x/y/z", type="dir", mode=0o6777, uid=4242),
                 e("x/y", type="sym", linkname=C)]], "verdict": "refused"},
    # -- across a dependency chain / layers: later overrides earlier, nothing is followed
    {"name": "chain-link-then-dir-below",
     "layers": [[e("a", type="sym", linkname=C)],
                [e("a/b", type="dir", mode=0o777, uid=4242), e("a/b/f", data=b"x")]],
     "verdict": "ok", "expect": {"a": "dir", "a/b": "dir", "a/b/f": "file"}},
    {"name": "chain-dir-then-link",
     "layers": [[e("a/b", type="dir", mode=0o777, uid=4242)],
                [e("a", type="sym", linkname=C)]],
     "verdict": "ok", "expect": {"a": "symlink:" + C, "a/b": "absent"}},
    {"name": "chain-etc-link-then-passwd",
     "layers": [[e("etc", type="sym", linkname=C)], [e("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n")]],
     "verdict": "ok", "expect": {"etc": "dir", "etc/passwd": "file"}},
    {"name": "chain-reported-case-in-the-dependency",
     "layers": [[e("a/b", type="dir", mode=0o777, uid=4242), e("a", type="sym", linkname=C)],
                [e("app", data=b"innocent")]], "verdict": "refused"},
    {"name": "chain-hardlink-to-a-lower-layer",
     "layers": [[e("f", data=b"lower")], [e("hl", type="lnk", linkname="f")]],
     "verdict": "refused"},
    # -- hard links
    {"name": "hardlink-to-host-path", "layers": [[e("hl", type="lnk", linkname=C + "/keep", rawlink=True)]],
     "verdict": "refused"},
    {"name": "hardlink-dotdot", "layers": [[e("hl", type="lnk", linkname="rootfs/../../keep", rawlink=True)]],
     "verdict": "refused"},
    {"name": "hardlink-to-a-later-entry",
     "layers": [[e("hl", type="lnk", linkname="later"), e("later")]], "verdict": "refused"},
    {"name": "hardlink-to-a-directory",
     "layers": [[e("d", **DIR), e("hl", type="lnk", linkname="d")]], "verdict": "refused"},
    {"name": "hardlink-through-a-link",
     "layers": [[e("d", type="sym", linkname=C), e("hl", type="lnk", linkname="d/keep")]],
     "verdict": "refused"},
    {"name": "hardlink-to-an-earlier-file",
     "layers": [[e("f", data=b"same"), e("hl", type="lnk", linkname="f")]],
     "verdict": "ok", "expect": {"f": "file", "hl": "file"}},
    # -- special files
    {"name": "device-nodes",
     "layers": [[e("dev", **DIR), e("dev/mem", type="chr", major=1, minor=1),
                 e("dev/sda", type="blk", major=8, minor=0),
                 e("dev/mem2", type="lnk", linkname="dev/mem")]],
     "verdict": "ok", "expect": {"dev": "dir", "dev/mem": "absent", "dev/sda": "absent",
                                 "dev/mem2": "absent"}},
    {"name": "fifo", "layers": [[e("etc", **DIR), e("etc/passwd", type="fifo")]],
     "verdict": "ok", "expect": {"etc/passwd": "fifo"}},
    # -- long names, duplicates
    {"name": "long-component", "layers": [[e("x" * 300)]], "verdict": "refused"},
    {"name": "deep-path",
     "layers": [[e("/".join(["d"] * 300) + "/f", data=b"deep")]],
     "verdict": "ok", "expect": {"/".join(["d"] * 300) + "/f": "file"}},
    {"name": "duplicate-file", "layers": [[e("f", data=b"one"), e("f", data=b"two")]],
     "verdict": "refused"},
    {"name": "duplicate-dir", "layers": [[e("d", **DIR), e("d", type="dir", mode=0o777)]],
     "verdict": "refused"},
    {"name": "duplicate-link-then-file",
     "layers": [[e("x", type="sym", linkname="/etc/shadow"), e("x", data=b"second")]],
     "verdict": "refused"},
    # -- OCI whiteouts (ordinary names in an ACI: appc has no whiteouts)
    {"name": "whiteout-dotdot-dot",
     "layers": [[e("d", **DIR), e("d/f", data=b"lower")], [e("d/.wh...")]],
     "verdict": {"aci": "ok", "render": "ok", "oci": "refused"}, "expect": {"d/f": "file"}},
    {"name": "whiteout-dotdot",
     "layers": [[e("d", **DIR), e("d/f", data=b"lower")], [e("d/.wh..")]],
     "verdict": {"aci": "ok", "render": "ok", "oci": "refused"}, "expect": {"d/f": "file"}},
    {"name": "whiteout-empty-name",
     "layers": [[e("f", data=b"lower")], [e(".wh.")]],
     "verdict": {"aci": "ok", "render": "ok", "oci": "refused"}, "expect": {"f": "file"}},
    {"name": "whiteout-unknown-meta",
     "layers": [[e("f", data=b"lower")], [e(".wh..wh.plnk", **DIR), e(".wh..wh.plnk/1.2")]],
     "verdict": {"aci": "ok", "render": "ok", "oci": "refused"}, "expect": {"f": "file"}},
    {"name": "whiteout-through-a-lower-link",
     "layers": [[e("l", type="sym", linkname=C)], [e("l/.wh.keep"), e("l/.wh..wh..opq")]],
     "verdict": "ok", "expect": {"l": "dir", "l/.wh.keep": "file"},   # appc: ordinary names
     "expect_oci": {"l": "symlink:" + C}},                         # OCI: nothing to remove
    {"name": "whiteouts-remove-lower-layers-only",
     "layers": [[e("a", **DIR), e("a/old", data=b"lower"), e("gone", data=b"lower")],
                [e("a/new", data=b"upper"), e("a/.wh..wh..opq"), e(".wh.gone")]],
     "verdict": "ok", "expect": {"a/new": "file", "a/old": "file", ".wh.gone": "file"},
     "expect_oci": {"a/new": "file", "a/old": "absent", "gone": "absent", ".wh.gone": "absent"}},
    # -- what the kernel is told: privileges and numbers
    {"name": "trusted-and-security-xattrs",
     "layers": [[e("f", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                             "SCHILY.xattr.security.selinux": "system_u:object_r:shadow_t:s0"})]],
     "verdict": "ok", "expect": {"f": "file"}, "no_xattrs": ["f"]},
    {"name": "owner-out-of-range", "layers": [[e("f", pax={"uid": str(1 << 40)})]],
     "verdict": "refused"},
    {"name": "mtime-not-a-number", "layers": [[e("f", pax={"mtime": "nan"})]],
     "verdict": "refused"},
]


# Cases for prepare/run: the image's app runs on example.com/busybox (a dependency by name);
# ``app`` is merged into its app section. Verdicts: ``refused`` (prepare says why in a sentence),
# ``app-fails`` (the pod starts, the app does not: its status holds the sentence), ``ok``
# (the app exits 0). ``in_tree``: what the app finds at these paths (as `ls -d` sees them).
POD_CASES: list[dict[str, Any]] = [
    {"name": "pod-etc-link-to-host", "layers": [[e("etc", type="sym", linkname=C)]],
     "pod": "ok", "in_tree": {C + "/hosts": "file"}},           # /etc/hosts made in the tree
    {"name": "pod-hosts-link-to-host-file",
     "layers": [[e("etc", **DIR), e("etc/hosts", type="sym", linkname=C + "/keep")]],
     "pod": "ok"},                                               # the image has one: untouched
    {"name": "pod-mountpoint-climbing", "layers": [[e("etc", **DIR)]],
     "app": {"mountPoints": [{"name": "data", "path": "/../../../../../.." + C + "/made"}]},
     "pod": "ok", "in_tree": {C + "/made": "dir"}},
    {"name": "pod-mountpoint-through-link", "layers": [[e("data", type="sym", linkname=C)]],
     "app": {"mountPoints": [{"name": "data", "path": "/data/sub"}]},
     "pod": "ok", "in_tree": {C + "/sub": "dir"}},
    {"name": "pod-mountpoint-is-the-root", "layers": [[e("etc", **DIR)]],
     "app": {"mountPoints": [{"name": "data", "path": "/a/../.."}]}, "pod": "refused"},
    {"name": "pod-passwd-is-dev-zero",
     "layers": [[e("etc", **DIR), e("etc/passwd", type="sym", linkname="/dev/zero")]],
     "app": {"user": "nobody"}, "pod": "refused"},
    {"name": "pod-passwd-is-a-fifo", "layers": [[e("etc", **DIR), e("etc/passwd", type="fifo")]],
     "app": {"user": "nobody"}, "pod": "refused"},
    {"name": "pod-etc-is-the-hosts-etc", "layers": [[e("etc", type="sym", linkname=C)]],
     "app": {"user": "canaryuser"}, "pod": "refused"},        # the canary holds a passwd
    {"name": "pod-group-through-link", "layers": [[e("l", type="sym", linkname=C)]],
     "app": {"group": "/l/keep"}, "pod": "refused"},          # a path's owner, not the host's
    {"name": "pod-dev-link-to-host", "layers": [[e("dev", type="sym", linkname=C)]],
     "pod": "app-fails"},
    {"name": "pod-proc-link-to-root", "layers": [[e("proc", type="sym", linkname="/")]],
     "pod": "app-fails"},
]


def entries_of(case: dict[str, Any], canary: str) -> list[list[dict[str, Any]]]:
    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace(C, canary)
        if isinstance(v, dict):
            return {k: sub(x) for k, x in v.items()}
        return v
    return [[sub(x) for x in layer] for layer in case["layers"]]


def tar_bytes(entries: list[dict[str, Any]], *, aci: bool, index: int = 0,
              manifest: dict[str, Any] | None = None) -> bytes:
    """One archive: an ACI (manifest + rootfs/ + entries, a dependency on the previous image
    when ``index`` > 0) or an OCI layer (the entries at the top)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        if aci:
            m: dict[str, Any] = manifest or {
                "acKind": "ImageManifest", "acVersion": "0.8.11", "name": f"{NAME}-{index}",
                "app": {"exec": ["/bin/true"], "user": "0", "group": "0"}}
            if index and manifest is None:
                m["dependencies"] = [{"imageName": f"{NAME}-{index - 1}"}]
            data = json.dumps(m).encode()
            ti = tarfile.TarInfo("manifest")
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
            ti = tarfile.TarInfo("rootfs")
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        for x in entries:
            raw = x.get("raw", False)
            name = x["name"] if raw or not aci else "rootfs/" + x["name"]
            ti = tarfile.TarInfo(name)
            kind = x.get("type", "file")
            ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                       "lnk": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
                       "blk": tarfile.BLKTYPE}[kind]
            ti.mode = x.get("mode", 0o755 if kind == "dir" else 0o644)
            ti.uid, ti.gid = x.get("uid", 0), x.get("gid", 0)
            ti.mtime = x.get("mtime", 1_600_000_000)
            if kind == "lnk":
                rawlink = x.get("rawlink", False)
                ti.linkname = x["linkname"] if rawlink or not aci else "rootfs/" + x["linkname"]
            elif kind == "sym":
                ti.linkname = x["linkname"]
            if kind in ("chr", "blk"):
                ti.devmajor, ti.devminor = x.get("major", 1), x.get("minor", 3)
            if x.get("pax"):
                ti.pax_headers = dict(x["pax"])
            data = x.get("data", b"x") if kind == "file" else b""
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if kind == "file" else None)
    return buf.getvalue()


def expect(case: dict[str, Any], pipeline: str, canary: str) -> dict[str, str]:
    """What the tree holds after an ``ok``: ``expect``, or ``expect_<pipeline>`` where given."""
    want = case.get(f"expect_{pipeline}", case.get("expect", {}))
    return {k.replace(C, canary): v.replace(C, canary) for k, v in want.items()}


def pod_image(case: dict[str, Any], canary: str) -> bytes:
    """A POD_CASES image: its entries over example.com/busybox, the app section adjusted."""
    entries = entries_of(case, canary)[0]
    app = {"exec": ["/bin/true"], "user": "0", "group": "0"}
    app.update(json.loads(json.dumps(case.get("app", {})).replace(C, canary)))
    return tar_bytes(entries, aci=True, manifest={
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": f"{NAME}-{case['name']}",
        "app": app, "dependencies": [{"imageName": "example.com/busybox"}]})


def verdict(case: dict[str, Any], pipeline: str) -> str:
    v = case["verdict"]
    return v if isinstance(v, str) else v[pipeline]


def write(out: Path, canary: str) -> list[dict[str, Any]]:
    """Write the corpus under ``out``; returns cases.json's content."""
    out.mkdir(parents=True, exist_ok=True)
    listing = []
    for case in CASES:
        d = out / case["name"]
        d.mkdir(exist_ok=True)
        layers = entries_of(case, canary)
        for i, entries in enumerate(layers):
            (d / f"image-{i}.aci").write_bytes(tar_bytes(entries, aci=True, index=i))
            (d / f"layer-{i}.tar").write_bytes(tar_bytes(entries, aci=False))
        listing.append({"name": case["name"], "archives": len(layers),
                        "verdict": {p: verdict(case, p) for p in ("aci", "render", "oci")},
                        "expect": {p: expect(case, p, canary) for p in ("aci", "render", "oci")}})
    for case in POD_CASES:
        d = out / case["name"]
        d.mkdir(exist_ok=True)
        (d / "image-0.aci").write_bytes(pod_image(case, canary))
        listing.append({"name": case["name"], "archives": 1, "verdict": {"pod": case["pod"]},
                        "in_tree": {k.replace(C, canary): v for k, v in case.get("in_tree", {}).items()}})
    (out / "cases.json").write_text(json.dumps(listing, indent=1) + "\n")
    return listing


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--canary", required=True, help="an absolute path outside every tree")
    args = ap.parse_args(argv)
    if not args.canary.startswith("/"):
        ap.error("--canary must be an absolute path")
    cases = write(args.out, args.canary)
    print(f"wrote {len(cases)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
