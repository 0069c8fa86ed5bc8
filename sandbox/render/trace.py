"""The render trace: who wrote each path of a rendered rootfs, whom it overrode, which
pathWhitelist removed it, what shadowed it (ace.md §Filesystem Setup). Notebooks draw it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class PathEvent:
    """Something that happened to one path in one layer.

    kind: ``wrote`` (first copy), ``overrode`` (replaced a copy from layer ``other``),
    ``merged`` (a directory over a directory: contents merge, metadata from this layer),
    ``implicit`` (a parent directory created for an entry), ``filtered`` (dropped by the
    whitelists of ``by``), ``shadowed`` (removed because layer ``layer`` wrote a non-directory
    at ``at``, an ancestor or the path itself).
    """

    kind: str
    layer: int
    type: str = ""
    other: int | None = None
    by: list[str] = field(default_factory=list)
    at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], "")}


@dataclass
class PathHistory:
    path: str
    events: list[PathEvent] = field(default_factory=list)
    final: int | None = None      # the layer whose copy is in the rendered tree
    type: str = ""                # its type there (dir, file, symlink, hardlink, fifo, device)

    @property
    def kind(self) -> str:
        """The type in the tree, or (for a removed path) the type the last layer offered."""
        return self.type or next((e.type for e in reversed(self.events) if e.type), "")


@dataclass
class RenderTrace:
    """For every path any layer offered: what each layer did with it, and who won."""

    layers: list[dict[str, Any]]
    paths: dict[str, PathHistory]

    # -- queries the notebook uses
    def layer(self, index: int) -> dict[str, Any]:
        return self.layers[index - 1]

    def owner(self, path: str) -> str | None:
        """Name of the image whose copy of ``path`` is in the tree (None: not in the tree)."""
        h = self.paths.get(path)
        return None if h is None or h.final is None else self.layer(h.final)["name"]

    def final_paths(self) -> dict[str, PathHistory]:
        return {p: h for p, h in self.paths.items() if h.final is not None}

    def removed_by_whitelist(self) -> dict[str, list[tuple[int, list[str]]]]:
        """Paths that some layer offered but a whitelist dropped: {path: [(layer, by), …]}."""
        out: dict[str, list[tuple[int, list[str]]]] = {}
        for p, h in self.paths.items():
            for e in h.events:
                if e.kind == "filtered":
                    out.setdefault(p, []).append((e.layer, e.by))
        return out

    def overridden(self) -> dict[str, list[PathEvent]]:
        return {p: [e for e in h.events if e.kind == "overrode"] for p, h in self.paths.items()
                if any(e.kind == "overrode" for e in h.events)}

    def shadowed(self) -> dict[str, list[PathEvent]]:
        return {p: [e for e in h.events if e.kind == "shadowed"] for p, h in self.paths.items()
                if any(e.kind == "shadowed" for e in h.events)}

    def upto(self, layer: int) -> "RenderTrace":
        """The trace as it stood once layers 1…``layer`` were extracted (for a stepper): each
        path with the events of those layers only, and the copy then on disk. A filtered copy
        leaves an earlier one in place; a shadowed path is gone."""
        paths: dict[str, PathHistory] = {}
        for p, h in self.paths.items():
            events = [e for e in h.events if e.layer <= layer]
            if not events:
                continue
            final, typ = None, ""
            for e in events:
                if e.kind in ("wrote", "overrode", "merged", "implicit"):
                    final, typ = e.layer, e.type or typ
                elif e.kind == "shadowed":
                    final, typ = None, ""
            if final is not None and final == h.final and h.type:
                typ = h.type
            paths[p] = PathHistory(p, events, final, typ)
        return RenderTrace(self.layers[:layer], paths)

    def touched(self, layer: int) -> set[str]:
        """The paths layer ``layer`` wrote, overrode, merged, filtered or shadowed."""
        return {p for p, h in self.paths.items() if any(e.layer == layer for e in h.events)}

    # -- (de)serialisation, kept next to the tree in the tree store
    def to_json(self) -> dict[str, Any]:
        return {"layers": self.layers,
                "paths": {p: {"final": h.final, "type": h.type,
                              "events": [e.to_json() for e in h.events]}
                          for p, h in self.paths.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RenderTrace":
        return cls(d["layers"], {p: PathHistory(p, [PathEvent(**e) for e in v["events"]],
                                                v["final"], v["type"])
                                 for p, v in d["paths"].items()})

    # -- views
    def describe(self, path: str) -> str:
        h = self.paths[path]
        name = lambda i: f"{i}:{self.layer(i)['name']}"  # noqa: E731
        parts = []
        for e in h.events:
            if e.kind == "filtered":
                parts.append(f"{name(e.layer)} filtered out by the whitelist of {', '.join(e.by)}")
            elif e.kind == "shadowed":
                parts.append(f"shadowed by {name(e.layer)}'s non-directory {e.at}")
            elif e.kind == "overrode":
                parts.append(f"{name(e.layer)} overrode {name(e.other)}"  # type: ignore[arg-type]
                             if e.other else f"{name(e.layer)} wrote")
            elif e.kind == "merged":
                parts.append(f"{name(e.layer)} merged into {name(e.other)}'s directory"  # type: ignore[arg-type]
                             )
            else:
                parts.append(f"{name(e.layer)} {e.kind} {e.type}".rstrip())
        return "; ".join(parts)

    def text(self, paths: Iterable[str] | None = None) -> str:
        rows = []
        for p in sorted(paths if paths is not None else self.paths):
            h = self.paths[p]
            owner = self.owner(p) or "(removed)"
            rows.append(f"{p:40} {h.kind or '-':8} {owner:28} {self.describe(p)}")
        head = f"{'path':40} {'type':8} {'from':28} history (layer:image)"
        return "\n".join([head] + rows)

    def _repr_html_(self) -> str:
        import html

        from sandbox.palette import color_for
        order = [l["name"] for l in self.layers]
        rows = []
        for p in sorted(self.paths):
            h = self.paths[p]
            owner = self.owner(p)
            col = color_for(owner, order) if owner else "#eeeeee"
            style = "" if owner else "text-decoration:line-through;color:#888"
            rows.append(f"<tr><td style='background:{col}'>&nbsp;</td>"
                        f"<td style='{style}'><code>{html.escape(p)}</code></td>"
                        f"<td>{html.escape(h.kind)}</td><td>{html.escape(owner or 'removed')}</td>"
                        f"<td>{html.escape(self.describe(p))}</td></tr>")
        return ("<table class='sandbox-trace'><thead><tr><th></th><th>path</th><th>type</th>"
                "<th>from</th><th>history</th></tr></thead><tbody>" + "".join(rows)
                + "</tbody></table>")
