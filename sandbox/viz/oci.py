"""Pictures for the journey to OCI: one sha512 ID for an ACI next to OCI's sha256 Merkle DAG."""
from __future__ import annotations

from typing import Any

import graphviz

from sandbox.viz import color_for, digraph


def formats_side_by_side(image: Any, exported: Any) -> graphviz.Digraph:
    """Left: the ACI (one archive, one ID). Right: index → manifest → config + layers, each
    layer coloured like the appc image it came from."""
    from sandbox.oci import Layout
    from sandbox.oci.layout import MANIFEST

    layout = Layout(exported.layout)
    mdesc = layout.resolve(exported.tag)
    manifest = layout.read_json(mdesc, MANIFEST, f"the manifest of {exported.layout}")
    order = [l["image"] for l in exported.layers]
    g = digraph("formats", rankdir="TB")
    with g.subgraph(name="cluster_appc") as a:
        a.attr(label="appc: one archive, one ID", style="rounded", color="#999999")
        a.node("aci", f"{image.name}\\n{image.id[:23]}…\\n(sha512 of the uncompressed tar)",
               fillcolor=color_for(image.name, order))
        a.node("aci_m", "manifest", shape="note")
        a.node("aci_r", "rootfs/", shape="folder")
        a.edge("aci", "aci_m")
        a.edge("aci", "aci_r")
        for i, d in enumerate(image.manifest.dependencies):
            a.node(f"dep{i}", f"depends on\\n{d.image_name}", shape="box", style="dashed,filled",
                   fillcolor=color_for(d.image_name, order))
            a.edge("aci_m", f"dep{i}", style="dashed", label="by name")
    with g.subgraph(name="cluster_oci") as o:
        o.attr(label="OCI: a Merkle DAG of sha256 blobs", style="rounded", color="#999999")
        o.node("idx", f"index.json\\ntag {exported.tag}", shape="note")
        o.node("man", f"manifest\\n{mdesc['digest'][:19]}…")
        o.node("cfg", f"config\\n{manifest['config']['digest'][:19]}…")
        o.edge("idx", "man")
        o.edge("man", "cfg")
        for i, l in enumerate(exported.layers, 1):
            o.node(f"l{i}", f"layer {i}: {l['image']}\\n{l['digest'][:19]}…\\n{l['paths']} paths",
                   fillcolor=color_for(l["image"], order))
            o.edge("man", f"l{i}")
    return g


def v1_layers(v1: Any, again: Any = None) -> Any:
    """The layers of a 2014-style ``docker save`` archive: each layer's ID next to the sha256 of
    its layer.tar (and the ID a second export of the same image got)."""
    from sandbox.viz import rows_table
    rows = []
    for i, l in enumerate(v1.layers):
        row = {"layer": i + 1, "ID (json 'id')": l.id[:16] + "…",
               "parent": (l.parent or "-")[:16] + ("…" if l.parent else "")}
        if again is not None and i < len(again.layers):
            row["ID, second export"] = again.layers[i].id[:16] + "…"
        row["sha256 of layer.tar"] = l.sha256[:23] + "…"
        rows.append(row)
    return rows_table(rows, f"{v1.path.name}: {len(v1.layers)} layers, base first")
