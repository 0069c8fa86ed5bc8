"""Dependency resolution (appc 0.8.11 aci.md §dependencies, §Dependency Matching; ace.md
§Filesystem Setup step 1-2).

:func:`resolve` finds every dependency by ``imageName`` + ``labels`` (an ``imageID``, when given,
must match) and returns the :class:`DependencyGraph` (a tree or a DAG; a cycle is an error).
:meth:`DependencyGraph.layers` flattens it depth first into the *override order*: each
dependency's own dependencies first, then the dependency, in listed order, the image last.
A→[B,C], C→[D] gives B, D, C, A; A→[B,C], B→[D], C→[D] gives D, B, D, C, A (D twice).
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from sandbox.errors import SandboxError
from sandbox.image.manifest import Dependency, ImageManifest
from sandbox.steps import Steps, record, snapshotting

# Bumped whenever the rendering rules change, so cached trees of an older renderer are not reused.
RENDERER_VERSION = 2      # 2: the one extractor (xattrs kept, an archive never overwrites its own entries)


# A DAG with many shared dependencies flattens to many layers (each path is examined again, as
# the spec's second example says); past this many we stop instead of extracting forever.
MAX_LAYERS = 256


class RenderError(SandboxError):
    """An image cannot be rendered (unsafe archive entry, bad whitelist, too many layers)."""


class DependencyError(SandboxError):
    """A dependency cannot be resolved."""


class DependencyNotFound(DependencyError):
    def __init__(self, name: str, labels: dict[str, str], wanted_by: str) -> None:
        self.name, self.labels, self.wanted_by = name, dict(labels), wanted_by
        super().__init__(
            f"{wanted_by} depends on {describe(name, labels)}, which is not in the image store.",
            hint="Import or fetch it first (e.g. `sandbox image import FILE.aci`).")


class DependencyMismatch(DependencyError):
    def __init__(self, name: str, labels: dict[str, str], wanted_id: str, found: list[str],
                 wanted_by: str) -> None:
        self.name, self.labels, self.wanted_id, self.found = name, dict(labels), wanted_id, found
        super().__init__(
            f"{wanted_by} depends on {describe(name, labels)} with imageID {short(wanted_id)}, "
            f"but the store's matching image is {', '.join(short(f) for f in found)} "
            "(aci.md §Dependency Matching: the ID MUST match).",
            hint="Import the exact image the manifest names, or rebuild the image against the "
                 "dependency you have.")


class DependencyCycle(DependencyError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            "the dependencies form a cycle: " + " → ".join(cycle) + ".",
            hint="Dependencies must form a tree or a DAG (ace.md §Filesystem Setup); remove one "
                 "of these edges.")


def short(image_id: str, n: int = 12) -> str:
    """``sha512-0123456789ab`` for display."""
    return image_id[: len("sha512-") + n] if image_id.startswith("sha512-") else image_id[:n]


def describe(name: str, labels: dict[str, str]) -> str:
    """``example.com/busybox (version=1.36, arch=amd64)``."""
    if not labels:
        return name
    return f"{name} ({', '.join(f'{k}={v}' for k, v in labels.items())})"


@dataclass(frozen=True)
class Node:
    """One image of the graph: its ID, name, labels and parsed manifest."""

    id: str
    name: str
    labels: dict[str, str]
    manifest: ImageManifest

    @property
    def label(self) -> str:
        return describe(self.name, self.labels)


@dataclass(frozen=True)
class Layer:
    """One extraction pass of the override order.

    ``chain`` is the path of image IDs from the top image down to this one; ``whitelists`` are
    the non-empty pathWhitelists on that chain, top first, as (image ID, Whitelist).
    """

    index: int                      # 1-based position in the override order
    image: Node
    chain: tuple[str, ...]
    whitelists: tuple[tuple[str, "Whitelist"], ...]

    @property
    def depth(self) -> int:
        return len(self.chain) - 1


@dataclass
class DependencyGraph:
    """The resolved dependencies: images by ID and edges in listed order."""

    top: str
    nodes: dict[str, Node]
    edges: dict[str, list[str]]

    def layers(self) -> list[Layer]:
        """The override order (ace.md §Filesystem Setup): depth first, dependencies in listed
        order before the image that lists them; a shared dependency appears once per path."""
        out: list[Layer] = []

        def visit(image_id: str, chain: tuple[str, ...]) -> None:
            chain = chain + (image_id,)
            for dep in self.edges[image_id]:
                visit(dep, chain)
            if len(out) >= MAX_LAYERS:
                raise RenderError(f"{self.nodes[self.top].label} flattens to more than "
                                  f"{MAX_LAYERS} layers; simplify its dependencies.")
            wls = tuple((i, wl) for i in chain
                        if (wl := Whitelist.of(self.nodes[i])) is not None)
            out.append(Layer(len(out) + 1, self.nodes[image_id], chain, wls))

        visit(self.top, ())
        return out

    def key(self) -> str:
        """The tree-store key: like rkt's ``deps-`` + a hash of the flattened image IDs (here
        with each layer's chain, and the renderer version)."""
        flat = [[layer.image.id, list(layer.chain)] for layer in self.layers()]
        blob = json.dumps({"renderer": RENDERER_VERSION, "layers": flat}, separators=(",", ":"))
        return "deps-sha512-" + hashlib.sha512(blob.encode()).hexdigest()

    def order_names(self) -> list[str]:
        return [layer.image.name for layer in self.layers()]

    def to_json(self) -> dict[str, Any]:
        return {"top": self.top,
                "nodes": {i: {"name": n.name, "labels": n.labels,
                              "pathWhitelist": n.manifest.path_whitelist}
                          for i, n in self.nodes.items()},
                "edges": self.edges,
                "order": [{"index": l.index, "image": l.image.id, "name": l.image.name,
                           "chain": list(l.chain),
                           "whitelists": [i for i, _ in l.whitelists]} for l in self.layers()]}

    def text(self) -> str:
        """The DAG as an indented tree and the override order, for the CLI."""
        lines = ["dependencies (as listed):"]

        def walk(i: str, lead: str, branch: str) -> None:
            # tree(1)'s drawing: ├─ for a child with siblings after it, └─ for the last one,
            # and a │ carried down beside the children of every ├─ child
            n = self.nodes[i]
            pwl = f"  pathWhitelist: {len(n.manifest.path_whitelist)} paths" \
                if n.manifest.path_whitelist else ""
            lines.append(f"{lead}{branch}{n.label}  {short(i)}{pwl}")
            below = lead + ("│  " if branch == "├─ " else "   " if branch else "")
            kids = self.edges[i]
            for k, d in enumerate(kids):
                walk(d, below, "└─ " if k == len(kids) - 1 else "├─ ")

        walk(self.top, "", "")
        lines.append("")
        lines.append("override order (first is extracted first; later overrides earlier):")
        for layer in self.layers():
            wl = ", ".join(self.nodes[i].name for i, _ in layer.whitelists)
            via = " ← ".join(self.nodes[i].name for i in reversed(layer.chain[:-1]))
            lines.append(f"  {layer.index:2}. {layer.image.label}"
                         + (f"   via {via}" if via else "")
                         + (f"   filtered by: {wl}" if wl else ""))
        return "\n".join(lines)


class ImageSource(Protocol):
    """What resolution needs from the image store (sandbox.image.store.Store provides it)."""

    def find(self, name: str, labels: dict[str, str] | None = None) -> list[Any]: ...
    def manifest(self, image_id: str) -> ImageManifest: ...


Fetch = Callable[[str, dict[str, str]], Any]


def _image_id(image: Any) -> str:
    return image if isinstance(image, str) else image.id


def _carried_manifest(image: Any) -> ImageManifest | None:
    # store.Image objects carry their parsed manifest; plain IDs do not.
    return getattr(image, "manifest", None) if not isinstance(image, str) else None


def _id_matches(candidate: str, wanted: str) -> bool:
    # types.md §Image ID: "sha512-<hex>"; a shortened wanted ID matches by prefix.
    return candidate == wanted or (len(wanted) > len("sha512-") and candidate.startswith(wanted))


def resolve(source: ImageSource, top: Any, *, fetch: Fetch | None = None,
            steps: Steps | None = None) -> DependencyGraph:
    """Resolve ``top`` (an image ID or an object with ``.id``) and all its dependencies.

    Each dependency is matched by ``imageName`` + ``labels`` among the store's images (aci.md
    §Dependency Matching); when none matches and ``fetch`` is given, ``fetch(name, labels)``
    provides it (discovery). If the dependency names an ``imageID`` it must match.
    """
    # Long on purpose: one depth-first walk whose helpers are closures over its state (nodes,
    # edges, memo, the manifests carried): split, that state would have to travel in arguments.
    nodes: dict[str, Node] = {}
    edges: dict[str, list[str]] = {}
    memo: dict[tuple[str, tuple[tuple[str, str], ...], str | None], str] = {}

    carried: dict[str, ImageManifest] = {}

    def note(image: Any) -> str:
        m = _carried_manifest(image)
        if m is not None:
            carried[_image_id(image)] = m
        return _image_id(image)

    top_id = note(top)

    def found_so_far(current: str | None = None, looking_for: str = "") -> dict[str, Any] | None:
        """For a stepper: the graph as far as it is known (kind ``resolve``), and the
        dependency of ``current`` being matched, if any."""
        if not snapshotting(steps):
            return None
        return {"kind": "resolve", "top": top_id, "current": current, "looking_for": looking_for,
                "nodes": {i: n.name for i, n in nodes.items()},
                "edges": {i: list(d) for i, d in edges.items()}}

    def node(image_id: str) -> Node:
        if image_id not in nodes:
            m = carried.get(image_id) or source.manifest(image_id)
            nodes[image_id] = Node(image_id, m.name, dict(m.labels), m)
            record(steps, "read", f"manifest of {short(image_id)}", name=m.name,
                   after=found_so_far(image_id))
        return nodes[image_id]

    def match(dep: Dependency, wanted_by: str, wanted_id: str) -> str:
        key = (dep.image_name, tuple(sorted(dep.labels.items())), dep.image_id)
        if key in memo:
            return memo[key]
        found = [note(c) for c in source.find(dep.image_name, dict(dep.labels))]
        record(steps, "check", f"dependency {describe(dep.image_name, dep.labels)}",
               candidates=len(found), imageID=dep.image_id or "-",
               after=found_so_far(wanted_id, describe(dep.image_name, dep.labels)))
        if not found and fetch is not None:
            record(steps, "fetch", describe(dep.image_name, dep.labels))
            found = [note(fetch(dep.image_name, dict(dep.labels)))]
        if not found:
            raise DependencyNotFound(dep.image_name, dep.labels, wanted_by)
        if dep.image_id:
            exact = [f for f in found if _id_matches(f, dep.image_id)]
            if not exact:
                raise DependencyMismatch(dep.image_name, dep.labels, dep.image_id, found,
                                         wanted_by)
            found = exact
        # The store lists the best match first (the latest import); take it.
        memo[key] = found[0]
        return found[0]

    def visit(image_id: str, stack: list[str]) -> None:
        n = node(image_id)
        if image_id in edges:  # a shared dependency (DAG): resolved once
            return
        edges[image_id] = []
        path = stack + [image_id]
        for dep in n.manifest.dependencies:
            dep_id = match(dep, n.label, image_id)
            if dep_id in path:
                cycle = path[path.index(dep_id):] + [dep_id]
                raise DependencyCycle([node(i).label for i in cycle])
            edges[image_id].append(dep_id)
            visit(dep_id, path)

    visit(top_id, [])
    graph = DependencyGraph(top_id, nodes, edges)
    record(steps, "check", "override order", order=" → ".join(graph.order_names()),
           after={**found_so_far(), "graph": graph} if snapshotting(steps) else None)
    return graph


@dataclass(frozen=True)
class Whitelist:
    """An image's non-empty pathWhitelist, normalised ("/c/" and "/c" are the same path)."""

    owner: str                     # image name, for messages
    paths: frozenset[str]
    parents: frozenset[str]        # every proper ancestor of a listed path

    @classmethod
    def of(cls, node: Node) -> "Whitelist | None":
        pwl = node.manifest.path_whitelist
        if not pwl:  # "An empty list is equivalent to an absent value"
            return None
        return cls.build(node.name, pwl)

    @classmethod
    def build(cls, owner: str, pwl: Iterable[str]) -> "Whitelist":
        paths, parents = set(), set()
        for p in pwl:
            if not p.startswith("/"):
                raise RenderError(f"pathWhitelist entry {p!r} of {owner} is not an absolute path "
                                  "(aci.md: the whitelist is a set of absolute paths).")
            p = posixpath.normpath("/" + p.lstrip("/"))
            paths.add(p)
            while p != "/":
                p = posixpath.dirname(p)
                parents.add(p)
        return cls(owner, frozenset(paths), frozenset(parents))

    def admits(self, path: str, is_dir: bool) -> bool:
        """A listed path survives; so does a directory on the way to a listed path."""
        return path in self.paths or (is_dir and path in self.parents)
