"""``sandbox image ...``: build, validate, identify and store ACIs (a thin layer over
sandbox.image.aci and sandbox.image.store)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.cli import command_group
from sandbox.errors import SandboxError, printable
from sandbox.steps import Steps

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("image",)


def _steps(args: argparse.Namespace) -> Steps | None:
    return Steps() if getattr(args, "steps", False) else None


def _show(steps: Steps | None) -> None:
    """--steps: print what the operation read, hashed, wrote and checked (to stderr)."""
    if steps is not None:
        print(steps, file=sys.stderr)


def _store():
    from sandbox.image.store import Store
    return Store()


def _need_file(p: str) -> Path:
    path = Path(p)
    if not path.exists():
        raise SandboxError(f"{path} does not exist; give the path of an .aci file.")
    if path.is_dir():
        raise SandboxError(f"{path} is a directory; give the path of an .aci file.")
    return path


def cmd_build(args: argparse.Namespace) -> int:
    from sandbox.image import aci
    steps = _steps(args)
    iid = aci.build(Path(args.layout), Path(args.out), compression=args.compression,
                    owner_root=args.owner_root, overwrite=args.overwrite, steps=steps)
    _show(steps)
    print(iid)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Valid paths on stdout; each problem on stderr as ``sandbox: PATH: problem``, then one
    line that says what to do (exit 1)."""
    from sandbox.image import aci
    bad = []
    for p in args.paths:
        probs = aci.validate(p)
        if probs:
            bad.append(p)
            for pr in probs:
                print(printable(f"sandbox: {p}: {pr}"), file=sys.stderr)
        elif not args.quiet:
            print(f"{p}: valid")
    if bad:
        print(f"sandbox: {len(bad)} of {len(args.paths)} path(s) are not valid images, layouts "
              "or manifests: fix what is listed above (docs/image-format.md says what each "
              "part must hold), then validate again.", file=sys.stderr)
    return 1 if bad else 0


def cmd_id(args: argparse.Namespace) -> int:
    from sandbox.image import aci
    path = _need_file(args.path)
    steps = _steps(args)
    iid = aci.image_id(path, steps=steps)
    _show(steps)
    print(aci.short_id(iid) if args.short else iid)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    st = _store()
    for p in args.paths:
        steps = _steps(args)
        img = st.import_aci(_need_file(p), steps=steps)
        _show(steps)
        print(printable(f"{img.id if args.full else img.short_id}\t{img.app_string}"))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    imgs = _store().list()
    if args.json:
        json.dump([i.to_json() for i in imgs], sys.stdout, indent=2)
        print()
        return 0
    if not imgs:
        print("The image store is empty; `sandbox image import FILE.aci` adds one.", file=sys.stderr)
        return 0
    from sandbox.cli._table import table
    rows = [[i.id if args.full else i.short_id, i.name,
             printable(",".join(f"{k}={v}" for k, v in i.labels.items())),
             f"{i.size:,}", i.imported_at[:19].replace("T", " ")] for i in imgs]
    print(table(["ID", "NAME", "LABELS", "SIZE", "IMPORTED"], rows, wrap={2: ",", 4: " "}))
    return 0


def cmd_cat_manifest(args: argparse.Namespace) -> int:
    img = _store().get(args.ref)
    json.dump(img.manifest.to_json(), sys.stdout, indent=2)
    print()
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    dest = Path(args.target)
    if dest.exists() and any(dest.iterdir()) and not args.overwrite:
        raise SandboxError(f"{dest} is not empty; extract into a new directory or pass --overwrite.")
    steps = _steps(args)
    res = _store().extract(args.ref, dest, allow_devices=args.allow_devices,
                           keep_setid=args.keep_setid, steps=steps,
                           max_bytes=args.max_size if args.max_size else None)
    _show(steps)
    for w in res.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)
    print(f"extracted {res.entries} entries ({res.bytes_written:,} bytes) into {dest}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out = _store().export(args.ref, Path(args.out), overwrite=args.overwrite)
    print(out)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    st = _store()
    for ref in args.refs:
        img = st.remove(ref)
        print(f"removed {img.short_id} ({img.app_string})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    st = _store()
    refs = args.refs or [i.id for i in st.list()]
    bad = 0
    for ref in refs:
        img = st.get(ref)
        from sandbox.render import (
            treestore,  # also the image's rendered trees (docs/rendering.md)
        )
        probs = st.verify(ref) + treestore.verify(st, img.id)
        if probs:
            bad += 1
            for p in probs:
                print(printable(p))
        else:
            print(printable(f"{img.short_id} ({img.app_string}): ok"))
    return 1 if bad else 0


def cmd_gc(args: argparse.Namespace) -> int:
    removed = _store().gc()
    for r in removed:
        print(f"removed {r}")
    print(f"gc: {len(removed)} item(s) removed")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    from sandbox.image import aci
    g = command_group(subparsers, "image", help="build, validate, identify and store ACIs")

    p = g.add_parser("build", help="build an ACI from a layout directory (manifest + rootfs/)")
    p.add_argument("layout", metavar="LAYOUT")
    p.add_argument("out", metavar="OUT.aci")
    p.add_argument("--compression", choices=aci.COMPRESSIONS, default="gzip")
    p.add_argument("--owner-root", action="store_true", help="record every file as uid/gid 0")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.aci if it exists")
    p.add_argument("--steps", action="store_true", help="print each step taken (to stderr)")
    p.set_defaults(func=cmd_build)

    p = g.add_parser("validate", help="check ACIs, layout directories or manifest JSON files")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.set_defaults(func=cmd_validate)

    p = g.add_parser("id", help="print the image ID (sha512 of the uncompressed tar)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--short", action="store_true", help="sha512- + 32 hex digits")
    p.add_argument("--steps", action="store_true", help="print each step taken (to stderr)")
    p.set_defaults(func=cmd_id)

    p = g.add_parser("import", help="add ACIs to the store (idempotent)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--full", action="store_true", help="print full IDs")
    p.add_argument("--steps", action="store_true", help="print each step taken (to stderr)")
    p.set_defaults(func=cmd_import)

    p = g.add_parser("list", aliases=["ls"], help="list the stored images")
    p.add_argument("--json", action="store_true")
    p.add_argument("--full", action="store_true", help="print full IDs")
    p.set_defaults(func=cmd_list)

    p = g.add_parser("cat-manifest", help="print an image's manifest")
    p.add_argument("ref", metavar="REF", help="ID, ID prefix or name[:version][,label=value...]")
    p.set_defaults(func=cmd_cat_manifest)

    p = g.add_parser("extract", help="extract an image's rootfs into a directory")
    p.add_argument("ref", metavar="REF")
    p.add_argument("target", metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="extract into a non-empty directory")
    p.add_argument("--allow-devices", action="store_true", help="create device nodes (root only)")
    p.add_argument("--keep-setid", action="store_true", help="keep setuid/setgid bits")
    p.add_argument("--max-size", type=int, metavar="BYTES",
                   help="refuse archives expanding beyond BYTES (default: free disk space)")
    p.add_argument("--steps", action="store_true", help="print each step taken (to stderr)")
    p.set_defaults(func=cmd_extract)

    p = g.add_parser("export", help="write a stored image out as an .aci file again")
    p.add_argument("ref", metavar="REF")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = g.add_parser("rm", help="remove images from the store")
    p.add_argument("refs", nargs="+", metavar="REF")
    p.set_defaults(func=cmd_rm)

    p = g.add_parser("verify", help="re-hash stored images and check them (all when no REF)")
    p.add_argument("refs", nargs="*", metavar="REF")
    p.add_argument("--steps", action="store_true", help="print each step taken (to stderr)")
    p.set_defaults(func=cmd_verify)

    p = g.add_parser("gc", help="remove leftover temp files and unreferenced blobs")
    p.set_defaults(func=cmd_gc)
