"""``sandbox image render|unrender|deps|trees``: an app's filesystem as ace.md §Filesystem Setup
renders it (a thin layer over sandbox.render and sandbox.render.treestore).

``image render REF DIR`` renders REF (once, into the tree store) and gives DIR a clean copy of
it: by default an overlay mount (instant whatever the size; remove it with ``image unrender
DIR``), or with ``--no-overlay`` a plain copy (an ordinary directory: ``rm -rf DIR``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from sandbox import _progress
from sandbox.cli import command_group
from sandbox.errors import SandboxError

TYPE_CHECKING = False   # every command imports this module: no typing at run time (~2 ms)
if TYPE_CHECKING:
    from typing import Any

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("image",)


def _store() -> Any:
    from sandbox.image.store import Store
    return Store()


def _fetcher(args: argparse.Namespace) -> Any:
    if not getattr(args, "fetch", False):
        return None
    from sandbox.dist.fetch import fetch_image

    def fetch(name: str, labels: dict[str, str]) -> Any:
        print(f"fetching missing dependency {name} …", file=sys.stderr)
        kw = {"options": args.insecure_options} if args.insecure_options else {}
        return fetch_image(name, labels, **kw)

    return fetch


def cmd_render(args: argparse.Namespace) -> int:
    from sandbox.render import treestore
    store = _store()
    tree = treestore.render_image(store, args.ref, fetch=_fetcher(args),
                                  progress=_progress.wanted())
    order = " → ".join(l["name"] for l in tree.layers)
    print(f"{'tree store hit' if tree.hit else 'rendered'}: {tree.path}")
    print(f"  override order: {order}")
    print(f"  tree hash: {tree.hash}")
    copy = treestore.clean_copy(tree, args.dir, overlay=False if args.no_overlay else None)
    print(copy.describe())
    if copy.mode == "overlay":
        print(f"  mount -t overlay overlay -o nosuid,nodev,{copy.mount_options} {copy.path}")
        print(f"  When done: sandbox image unrender {args.dir}   (or: umount {copy.path})")
    else:
        # a plain copy is the caller's directory from now on: forget our bookkeeping
        import shutil
        shutil.rmtree(copy.state, ignore_errors=True)
        print(f"  It is an ordinary directory: remove it with rm -rf {args.dir}")
    if args.trace:
        print()
        print(tree.trace().text())
    return 0


def cmd_unrender(args: argparse.Namespace) -> int:
    from sandbox.render import treestore
    copy = treestore.find_copy(args.dir)
    if copy is None:
        raise SandboxError(f"{os.path.abspath(args.dir)} is not a directory `sandbox image render` "
                           "mounted.", hint="A plain copy (--no-overlay) is removed with rm -rf.")
    copy.close()
    print(f"unmounted and removed {copy.path} (and its writes in {copy.upper})")
    return 0


def cmd_deps(args: argparse.Namespace) -> int:
    from sandbox import render
    store = _store()
    graph = render.resolve(store, store.get(args.ref), fetch=_fetcher(args))
    if args.json:
        print(json.dumps(graph.to_json(), indent=2))
    else:
        print(graph.text())
        print(f"\ntree-store key: {graph.key()[:40]}…")
    return 0


def cmd_trees(args: argparse.Namespace) -> int:
    from sandbox import render
    from sandbox.render import treestore
    trees = treestore.list_trees()
    if args.json:
        print(json.dumps([{"key": t.key, "image": t.image_id, "name": t.name, "hash": t.hash,
                           "rendered_at": t.rendered_at, "path": str(t.path),
                           "order": [l["name"] for l in t.layers]} for t in trees], indent=2))
        return 0
    if not trees:
        print("the tree store is empty (`sandbox image render REF DIR` fills it)")
    for t in trees:
        print(f"{t.key[:28]}…  {render.short(t.image_id)}  {render.describe(t.name, t.labels)}  "
              f"{len(t.layers)} layer(s)  {t.rendered_at}")
    copies = treestore.active_copies()
    if copies:
        print("\nclean copies in use:")
        for c in copies:
            print(f"  {c['path']}  ({c['mode']}, {c['name']})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    g = command_group(subparsers, "image", help="build, validate, identify and store ACIs")

    p = g.add_parser("render", help="render an image with its dependencies into DIR "
                                    "(ace.md Filesystem Setup)")
    p.add_argument("ref", metavar="REF", help="ID, ID prefix or name[:version][,label=value...]")
    p.add_argument("dir", metavar="DIR", help="an empty or new directory")
    p.add_argument("--trace", action="store_true",
                   help="print, for every path, which image wrote, overrode, filtered or shadowed it")
    p.add_argument("--no-overlay", action="store_true",
                   help="make DIR a plain copy instead of an overlay mount over the tree store")
    p.add_argument("--fetch", action="store_true",
                   help="fetch missing dependencies by discovery (default: store only)")
    p.add_argument("--insecure-options", metavar="LIST", default="",
                   help="passed to the fetcher for --fetch (e.g. image,http)")
    p.set_defaults(func=cmd_render)

    p = g.add_parser("unrender", help="unmount and remove a DIR made by `image render`")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_unrender)

    p = g.add_parser("deps", help="show the resolved dependency DAG and the override order")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fetch", action="store_true", help="fetch missing dependencies")
    p.add_argument("--insecure-options", metavar="LIST", default="")
    p.set_defaults(func=cmd_deps)

    p = g.add_parser("trees", help="list the tree store (rendered images) and clean copies in use")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trees)
