"""``sandbox catalog build``: the lab's images, built offline from Debian's busybox-static."""
from __future__ import annotations

import argparse
from pathlib import Path

from sandbox import _progress
from sandbox.cli import command_group

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("catalog",)


def cmd_build(args: argparse.Namespace) -> int:
    from sandbox.image import catalog
    from sandbox.image.store import Store
    store = Store() if args.do_import else None
    built = catalog.build(Path(args.out), import_to=store, compression=args.compression,
                          allow_download=not args.offline, progress=not args.quiet and _progress.wanted())
    for name, path in built.items():
        print(f"{name}\t{path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from sandbox.image import aci
    g = command_group(subparsers, "catalog", help="the lab's image catalogue (built offline)")
    p = g.add_parser("build", help="build the lab images (busybox from Debian's .deb, the pod apps)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the .aci files")
    p.add_argument("--import", dest="do_import", action="store_true",
                   help="also import the images into the store")
    p.add_argument("--compression", choices=aci.COMPRESSIONS, default="gzip")
    p.add_argument("--offline", action="store_true",
                   help="never run `apt-get download`; use a cached .deb or the installed package")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_build)
