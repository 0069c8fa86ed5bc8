"""``sandbox oci ...``: the journey to OCI — export an image as an OCI image layout, import one
as an ACI, and write an OCI runtime bundle (a thin layer over sandbox.oci)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sandbox import _progress
from sandbox.cli import command_group

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("oci",)


def _store():
    from sandbox.image.store import Store
    return Store()


def cmd_export(args: argparse.Namespace) -> int:
    from sandbox import oci
    e = oci.export_image(_store(), args.ref, args.out_dir, tag=args.tag, progress=_progress.wanted(),
                         digest=args.digest)
    for i, l in enumerate(e.layers, 1):
        print(f"layer {i}: {l['digest']}  {l['paths']:5} paths  from {l['image']}")
    print(f"manifest {e.manifest_digest}")
    print(f"wrote {e.layout} (tag {e.tag}); try: skopeo inspect oci:{e.layout}:{e.tag}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import tempfile

    from sandbox import oci
    with tempfile.TemporaryDirectory(prefix="sbx-oci-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "imported.aci"
        imp = oci.import_layout(args.ref, out, name=args.name)
        img = _store().import_aci(out)
    print(f"{len(imp.layers)} layers applied; imported {img.app_string}")
    print(img.id)
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from sandbox import oci
    out = oci.make_bundle(_store(), args.ref, args.out_dir, app=args.app, progress=_progress.wanted())
    print(f"wrote {out}/config.json and {out}/rootfs; run it with: runc run --bundle {out} NAME")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    g = command_group(sub, "oci", "export to / import from OCI image layouts, runtime bundles")
    p = g.add_parser("export", help="write an image (one layer per dependency) as an OCI layout")
    p.add_argument("ref", metavar="REF", help="image ID (prefix) or name[:version][,label=value]")
    p.add_argument("out_dir", metavar="DIR", help="the OCI image layout directory to write")
    p.add_argument("--tag", help="the ref name in index.json (default: the version label)")
    p.add_argument("--digest", choices=("sha256", "sha512"), default="sha256",
                   help="the digest algorithm blobs are named by (sha256 is the convention; the "
                        "image-spec registers sha512 too)")
    p.set_defaults(func=cmd_export)
    p = g.add_parser("import", help="turn an OCI layout DIR[:TAG] into an ACI in the store")
    p.add_argument("ref", metavar="DIR[:TAG]")
    p.add_argument("--name", help="the appc name of the result (default: the one our export "
                                  "recorded)")
    p.add_argument("--out", metavar="ACI", help="also keep the ACI file here")
    p.set_defaults(func=cmd_import)
    p = g.add_parser("bundle", help="write an OCI runtime bundle (config.json + rootfs) for runc")
    p.add_argument("ref", metavar="REF")
    p.add_argument("out_dir", metavar="DIR")
    p.add_argument("--app", help="the app name in the bundle (default: from the image name)")
    p.set_defaults(func=cmd_bundle)
