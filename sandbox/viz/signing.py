"""Pictures for notebook 03: OpenPGP packets, the bytes a signature hashes, and trust keyrings.

    packets(data)                      graphviz: one box per packet, subpackets listed (hashed / not)
    hashed_bytes(signature, document)  HTML: document ‖ hashed part ‖ trailer, coloured by role
    keyring(store, image_name)         graphviz: which trust-store directories count for a name
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import graphviz

from sandbox.palette import kind_color
from sandbox.trust import pgp
from sandbox.trust import truststore as trust
from sandbox.viz import PALETTE, digraph

HASHED = kind_color("hashed")        # covered by the signature's digest
UNHASHED = kind_color("unhashed")    # carried along, covered by nothing
TRAILER = kind_color("trailer")


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
        key = kind_color("key")       # a key packet, public or secret, in the key's colour
        color = {2: kind_color("signed"), 6: key, 14: key, 5: key, 7: key,
                 13: PALETTE[3]}.get(it.tag, "#dddddd")
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
    rows = [f'<tr><td style="{cell};background:{HASHED}">1. document</td><td style="{cell}">{doc}</td></tr>']
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


# -- signing and verifying, step by step (notebook 03) --------------------------------------------

def packet_picture(state: dict[str, Any]) -> graphviz.Digraph:
    """The signature packet as far as it is assembled (RFC 9580 §5.2.3), top to bottom so it is
    read at full size: its fields in packet order, filled once they exist, coloured by what
    covers them; below, what went into the hash and the digest; below that the packet's last
    two fields, made from the digest (its first two bytes; its value signed)."""
    role_color = {"hashed": kind_color("hashed"), "unhashed": kind_color("unhashed"),
                  "digest": kind_color("hashed"), "value": kind_color("key")}
    now = kind_color("now")
    g = digraph("packet", rankdir="TB", nodesep="0.5", ranksep="0.45")
    g.attr("node", shape="plaintext", style="")
    g.attr("edge", fontsize="11")
    fields = state["fields"]

    def cell(i: int) -> tuple[str, str, str, str]:
        f = fields[i]
        bg = role_color[f["role"]] + ("cc" if f["filled"] else "22")
        border = f' COLOR="{now}" BORDER="3"' if i == state["current"] else ""
        v = str(f["value"])
        value = (html.escape(v[:30] + ("…" if len(v) > 30 else "")) or " ") if f["filled"] \
            else "<I>(not yet)</I>"
        hx = (html.escape(f["hex"][:24] + ("…" if len(f["hex"]) > 24 else "")) or " ") \
            if f["filled"] else " "  # (graphviz refuses an empty <FONT>)
        return bg, border, value, hx

    tail = [i for i, f in enumerate(fields) if f["role"] in ("digest", "value")]
    rows = ['<TR><TD COLSPAN="3" BGCOLOR="#eeeeee"><B>signature packet (tag 2), version 4</B></TD></TR>']
    for i, f in enumerate(fields):
        if i in tail:
            continue
        bg, border, value, hx = cell(i)
        rows.append(f'<TR><TD ALIGN="LEFT" BGCOLOR="{bg}"{border}><FONT POINT-SIZE="12">'
                    f'{html.escape(f["label"])}</FONT></TD><TD ALIGN="LEFT" BGCOLOR="{bg}"{border}>'
                    f'<FONT POINT-SIZE="12">{value}</FONT></TD><TD ALIGN="LEFT" BGCOLOR="{bg}"{border}>'
                    f'<FONT FACE="Courier" POINT-SIZE="11">{hx}</FONT></TD></TR>')
    g.node("packet", '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">'
           + "".join(rows) + "</TABLE>>")
    h = state["hash"]
    parts = [("1. the document", f"{h['document']:,} bytes" if h["document"] is not None else None),
             ("2. the hashed fields", f"{h['hashed']} bytes" if h["hashed"] is not None else None),
             ("3. the trailer 04 FF + length", "6 bytes" if h["trailer"] is not None else None)]
    hrows = [f'<TR><TD COLSPAN="2" BGCOLOR="{kind_color("hashed")}55"><B>{html.escape(h["algorithm"])}'
             f'( 1 ‖ 2 ‖ 3 )</B></TD></TR>']
    for label, got in parts:
        hrows.append(f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="12">{label}</FONT></TD><TD ALIGN="LEFT">'
                     f'<FONT POINT-SIZE="12">{got or "<I>(not yet)</I>"}</FONT></TD></TR>')
    digest = h["digest"]
    dtext = (html.escape(digest[:32]) + "<BR/>" + html.escape(digest[32:64])) if digest else "<I>(not yet)</I>"
    hrows.append(f'<TR><TD COLSPAN="2"><FONT FACE="Courier" POINT-SIZE="11">digest: {dtext}'
                 f'</FONT></TD></TR>')
    g.node("hash", '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">'
           + "".join(hrows) + "</TABLE>>")
    g.edge("packet", "hash", label=" the green fields" if h["hashed"] is not None else "",
           color=kind_color("hashed"), style="solid" if h["hashed"] is not None else "invis")
    # the packet's last two fields, side by side under the digest they come from
    with g.subgraph() as end:
        end.attr(rank="same")
        for i in tail:
            bg, border, value, hx = cell(i)
            end.node(f"t{i}", f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">'
                              f'<TR><TD ALIGN="LEFT" BGCOLOR="{bg}"{border}><FONT POINT-SIZE="12">'
                              f'{html.escape(fields[i]["label"])}</FONT></TD></TR>'
                              f'<TR><TD ALIGN="LEFT" BGCOLOR="{bg}"{border}><FONT POINT-SIZE="12">{value}'
                              f'</FONT></TD></TR><TR><TD ALIGN="LEFT" BGCOLOR="{bg}"{border}><FONT '
                              f'FACE="Courier" POINT-SIZE="11">{hx}</FONT></TD></TR></TABLE>>')
    for i in tail:
        f = fields[i]
        made = bool(digest) and f["filled"]
        g.edge("hash", f"t{i}", style="solid" if made else "invis",
               label=("first 2 bytes" if f["role"] == "digest" else "signed with the secret key")
               if made else "", color=kind_color("hashed" if f["role"] == "digest" else "key"),
               penwidth="2" if f["role"] == "value" else "1")
    g.attr(label="… and the packet ends with these two fields", labelloc="b", fontsize="11",
           fontcolor="#555555")
    return g


def sign_frame(steps: Any, k: int) -> Any:
    """The stepper's picture for a signature being made (states of kind ``pgp``)."""
    from sandbox.viz.stepper import Frame, last_state
    j, state = last_state(steps, k, "pgp")
    if j != k:                     # a later step (the signature is done): no field is "now"
        state = {**state, "current": None}
    return Frame([packet_picture(state)])


CHECKS = [("signer's key is known", "signer in keyring"),
          ("the bytes match (digest, left 16 bits, signature math)", "signature math"),
          ("the key may sign (not revoked, not expired)", "signing key usable"),
          ("the key is trusted for this name (whole path segments)", "signer trusted for name")]


def trust_picture(state: dict[str, Any], *, done: bool) -> graphviz.Digraph:
    """Verification as a walk: the image's name, the trust store's directories that can hold a
    key for it (root.d, then one per whole-segment prefix), the keys there, the signer's key if
    it is among them, and the verdict."""
    now, ok_c, bad_c = kind_color("now"), kind_color("ok"), kind_color("refused")
    g = digraph("trustpath", rankdir="TB", nodesep="0.3", ranksep="0.3")   # narrow: full size
    g.attr("node", fontsize="13")
    g.attr("edge", fontsize="11")
    name = state.get("name") or "(name not read yet)"
    g.node("name", f"image name\n{name}", shape="note", fillcolor=PALETTE[4])
    signer = (state.get("signer") or "").lower()
    prev = "name"
    for i, d in enumerate(state["dirs"]):
        did = f"d{i}"
        last = i == len(state["dirs"]) - 1 and not done
        label = f"{d['label']}" + ("  (system)" if d.get("system") else "") + \
            ("\nno such directory" if not d["exists"] else f"\n{len(d['keys'])} key(s)")
        g.node(did, label, shape="folder", fillcolor="white" if not d["exists"] else "#f4f4f4",
               style="filled,dashed" if not d["exists"] else "filled",
               color=now if last else "black", penwidth="2.5" if last else "1")
        g.edge(prev, did, label="then" if i else "look in", color="#777777")
        prev = did
        with g.subgraph() as row:          # its keys beside it
            row.attr(rank="same")
            row.node(did)
            for fpr in d["keys"]:
                match = bool(signer) and (fpr == signer or fpr.endswith(signer))
                row.node(f"k{i}_{fpr}", f"key {pgp.group_fingerprint(fpr)[:19]}…"
                         + ("\nthe signer" if match else ""), shape="box",
                         fillcolor=kind_color("key") + ("ff" if match else "44"),
                         penwidth="2" if match else "1")
                row.edge(did, f"k{i}_{fpr}", arrowhead="none", color="#999999")
    verdict = state.get("verdict")
    if verdict is not None:
        g.node("verdict", "ACCEPTED" if verdict else "REFUSED", shape="box",
               fillcolor=(ok_c if verdict else bad_c), fontcolor="white", penwidth="2")
        g.edge(prev, "verdict", color=ok_c if verdict else bad_c, penwidth="2")
    return g


def checks_html(checks: list[tuple[str, bool | None]]) -> str:
    """The verifier's checks so far: ✔ passed, ✘ failed (the verdict's reason), · not yet."""
    ok_c, bad_c = kind_color("ok"), kind_color("refused")
    items = "".join(
        f'<div style="color:{ok_c if ok else bad_c if ok is False else "#888"};margin:3px 0">'
        f'{"✔" if ok else "✘" if ok is False else "·"} {html.escape(label)}</div>'
        for label, ok in checks)
    return f'<div style="font-size:13px;line-height:1.3;max-width:240px"><b>checks so far</b>{items}</div>'


def verify_frame(steps: Any, k: int) -> Any:
    """The stepper's picture for verification (states of kind ``trust``)."""
    from sandbox.viz.stepper import Frame, last_state
    j, state = last_state(steps, k, "trust")
    start = j
    while start > 0 and steps[start].what and not (steps[start].action == "read"
                                                  and steps[start].detail.get("role") == "signature"):
        start -= 1
    checks = _verdicts(steps, start, k)
    return Frame([trust_picture(state, done=state.get("verdict") is not None), checks_html(checks)])


def _verdicts(steps: Any, start: int, end: int) -> list[tuple[str, bool | None]]:
    seen = {s.what: s.detail.get("ok") for s in list(steps)[start:end + 1] if s.action == "check"}
    return [(label, seen.get(what)) for label, what in CHECKS]


def verdict_matrix(cases: dict[str, tuple[trust.TrustStore, Path, Path | None]]) -> Any:
    """Each case (a row: a trust store, an image, its signature or None for ``IMAGE.asc``)
    against each check of a verification (the columns): ✔ passed, ✘ the check that stopped it,
    · never reached. Each row is a real ``verify_image`` run, read from its recorded steps."""
    from sandbox.steps import Steps
    header = ["case", *(label for label, _ in CHECKS), "verdict"]
    rows_html = []
    for case, (store, aci_path, sig_path) in cases.items():
        steps = Steps()
        try:
            store.verify_image(aci_path, sig_path, steps=steps)
            verdict, ok = "ACCEPTED", True
        except pgp.SignatureError as e:
            verdict, ok = f"REFUSED ({type(e).__name__})", False
        seen = {s.what: s.detail.get("ok") for s in steps if s.action == "check"}
        cells, stopped = [], False
        for _, what in CHECKS:
            passed = seen.get(what) is True
            if stopped:
                cells.append(("·", "#999999"))
            elif passed:
                cells.append(("✔", kind_color("ok")))
            else:
                cells.append(("✘ stopped here", kind_color("refused")))
                stopped = True
        color = kind_color("ok") if ok else kind_color("refused")
        rows_html.append("<tr><td style='text-align:left'><b>" + html.escape(case) + "</b></td>"
                         + "".join(f"<td style='color:{c};text-align:center'>{t}</td>" for t, c in cells)
                         + f"<td style='color:{color};text-align:left'>{html.escape(verdict)}</td></tr>")
    head = "".join(f"<th style='text-align:center'>{html.escape(h)}</th>" for h in header)
    return Html(f"<table class='sbx-verdicts'><thead><tr>{head}</tr></thead><tbody>"
                + "".join(rows_html) + "</tbody></table>")
