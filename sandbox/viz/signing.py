"""Pictures for notebook 03: OpenPGP packets, the bytes a signature hashes, and trust keyrings.

    packets(data)                      graphviz: one box per packet, subpackets listed (hashed / not)
    hashed_bytes(signature, document)  HTML: document ‖ hashed part ‖ trailer, coloured by role
    keyring(store, image_name)         graphviz: which trust-store directories count for a name
"""
from __future__ import annotations

import html
from pathlib import Path

import graphviz

from sandbox.trust import pgp
from sandbox.trust import truststore as trust
from sandbox.viz import PALETTE, digraph

HASHED = PALETTE[2]      # green: covered by the signature
UNHASHED = PALETTE[7]    # grey: carried along, not covered
TRAILER = PALETTE[4]


class Html(str):
    """A string Jupyter renders as HTML."""

    def _repr_html_(self) -> str:
        return str(self)


def _row(k: str, v: str, color: str | None = None) -> str:
    bg = f' BGCOLOR="{color}"' if color else ""
    return (f'<TR><TD ALIGN="LEFT"{bg}><FONT POINT-SIZE="9">{html.escape(k)}</FONT></TD>'
            f'<TD ALIGN="LEFT"{bg}><FONT POINT-SIZE="9">{html.escape(v[:70])}</FONT></TD></TR>')


def packets(data: bytes | str, title: str = "") -> graphviz.Digraph:
    """The packet sequence of a signature or key file, as a chain of tables."""
    g = digraph("packets", rankdir="TB", label=title, labelloc="t")
    g.attr("node", shape="plaintext", style="")
    prev = None
    for i, it in enumerate(pgp.dump(data)):
        color = {2: PALETTE[0], 6: PALETTE[1], 14: PALETTE[1], 5: PALETTE[5], 7: PALETTE[5],
                 13: PALETTE[6]}.get(it.tag, "#dddddd")
        rows = [f'<TR><TD COLSPAN="2" BGCOLOR="{color}"><B>packet {it.tag}: {html.escape(it.name)}</B>'
                f'<BR/><FONT POINT-SIZE="8">@{it.offset}, header {html.escape(it.header)}, '
                f'{it.length} bytes</FONT></TD></TR>']
        rows += [_row(k, v) for k, v in it.fields]
        if it.tag == 2:
            rows.append(f'<TR><TD COLSPAN="2" BGCOLOR="{HASHED}"><FONT POINT-SIZE="9">hashed subpackets '
                        '(signed)</FONT></TD></TR>')
            rows += [_row(n + (" (critical)" if c else ""), v, "#e6f5ef") for n, v, c in it.hashed]
            rows.append(f'<TR><TD COLSPAN="2" BGCOLOR="{UNHASHED}"><FONT POINT-SIZE="9">unhashed subpackets '
                        '(not signed)</FONT></TD></TR>')
            rows += [_row(n, v, "#f0f0f0") for n, v, c in it.unhashed]
        label = '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">' + "".join(rows) + "</TABLE>>"
        node = f"p{i}"
        g.node(node, label=label)
        if prev:
            g.edge(prev, node)
        prev = node
    return g


def _hex(b: bytes, limit: int = 96) -> str:
    s = b[:limit].hex(" ")
    return s + (f" … (+{len(b) - limit} bytes)" if len(b) > limit else "")


def hashed_bytes(signature: bytes | str | pgp.Signature, document: str | Path | bytes | None = None) -> Html:
    """What the signer's hash function eats, in order (RFC 9580 §5.2.4), as coloured HTML."""
    sig = signature if isinstance(signature, pgp.Signature) else pgp.read_signature(signature)
    if isinstance(document, (str, Path)):
        p = Path(document)
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(32)
        doc = f"the file {html.escape(p.name)}: {size:,} bytes, starting {html.escape(head.hex(' '))} …"
    elif isinstance(document, bytes):
        doc = f"{len(document):,} bytes: {html.escape(_hex(document, 32))}"
    else:
        doc = "the whole document"
    cell = "padding:4px 8px;border:1px solid #999;font-family:monospace;font-size:12px;vertical-align:top"
    rows = [f'<tr><td style="{cell};background:{PALETTE[1]}">1. document</td><td style="{cell}">{doc}</td></tr>']
    colors = [HASHED, HASHED, HASHED, TRAILER]
    for n, ((label, b), c) in enumerate(zip(pgp.signed_bytes(sig), colors), 2):
        rows.append(f'<tr><td style="{cell};background:{c}">{n}. {html.escape(label)}</td>'
                    f'<td style="{cell}">{html.escape(_hex(b))}</td></tr>')
    body = sig.body
    rest = body[len(sig.hashed_part):]
    ulen = int.from_bytes(rest[:2], "big")
    rows.append(f'<tr><td style="{cell};background:{UNHASHED}">not hashed: unhashed subpackets</td>'
                f'<td style="{cell};color:#666">{html.escape(_hex(rest[:2 + ulen]))}</td></tr>')
    rows.append(f'<tr><td style="{cell};background:{UNHASHED}">not hashed: left 16 bits, signature MPIs</td>'
                f'<td style="{cell};color:#666">{html.escape(_hex(rest[2 + ulen:], 48))}</td></tr>')
    caption = (f"{sig.hash_name}( 1 ‖ 2 ‖ 3 ‖ 4 ‖ 5 ) is signed with {pgp.PK_ALGOS.get(sig.pk_algo, '?')}; "
               f"its first two bytes are stored in the packet: {sig.left16.hex()}")
    return Html(f'<table style="border-collapse:collapse"><caption style="caption-side:bottom;'
                f'font-size:12px">{html.escape(caption)}</caption>{"".join(rows)}</table>')


def keyring(store: trust.TrustStore, image_name: str) -> graphviz.Digraph:
    """The trust store's directories; the ones whose keys count for ``image_name`` in colour."""
    g = digraph("keyring", rankdir="LR", label=f"keys that may sign {image_name}", labelloc="t")
    applies = set(trust.prefixes_of(image_name))
    g.node("name", image_name, shape="note", fillcolor=PALETTE[3])
    g.node("root", "root.d (every name)", fillcolor=HASHED)
    g.edge("root", "name")
    seen = set()
    for k in store.list():
        where = "root" if k.scope == "root" else "prefix_" + "".join(c if c.isalnum() else "_" for c in k.prefix)
        if where not in seen and where != "root":
            ok = k.prefix in applies
            g.node(where, f"prefix.d/{k.prefix}", fillcolor=HASHED if ok else "#eeeeee",
                   color="black" if ok else "#999999")
            if ok:
                g.edge(where, "name")
            seen.add(where)
        label = (f"{pgp.group_fingerprint(k.fingerprint)[:19]}…\n" + (", ".join(k.uids) or "(masked)")
                 + f"\n[{k.origin}]")
        node = f"key_{where}_{k.fingerprint}".replace("-", "_").replace("~", "_")
        g.node(node, label, shape="box", style="rounded,filled,dashed" if k.masked else "rounded,filled",
               fillcolor="white", fontsize="9")
        g.edge(node, where, arrowhead="none")
    return g
