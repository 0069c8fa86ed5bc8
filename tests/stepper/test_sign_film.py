"""Signing and verifying recorded for the stepper: the fields put together step by step are the
bytes of the packet that was made (read back by the parser), the digest is hashlib's over
document ‖ hashed part ‖ trailer, and the walk through the trust store visits the directories
that exist on disk for the name, in rkt's order."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from sandbox.image import aci
from sandbox.steps import Steps
from sandbox.trust import pgp
from sandbox.trust import truststore as trust
from sandbox.viz import signing as viz
from sandbox.viz.stepper import Stepper, frame_of


@pytest.fixture(scope="module")
def keys():
    return {n: pgp.generate_key(f"{n} <{n.lower()}@example.com>", type="ed25519")
            for n in ("Alice", "Mallory")}


@pytest.fixture
def image(tmp_path: Path) -> Path:
    layout = tmp_path / "layout"
    (layout / "rootfs" / "etc").mkdir(parents=True)
    (layout / "rootfs" / "etc" / "motd").write_text("signed\n")
    (layout / "manifest").write_text(json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                                                 "name": "example.com/hello"}))
    out = tmp_path / "hello.aci"
    aci.build(layout, out)
    return out


def test_the_fields_assembled_are_the_packet_made(image: Path, keys) -> None:
    steps = Steps(snapshots=True)
    sig = pgp.read_signature(pgp.sign(image, keys["Alice"], steps=steps))
    states = [s.after for s in steps if s.after]
    final = states[-1]
    assert all(f["filled"] for f in final["fields"])
    hexes = lambda role: "".join(f["hex"].replace(" ", "") for f in final["fields"]  # noqa: E731
                                 if f["role"] == role)
    assert hexes("hashed") == sig.hashed_part.hex()
    body_after_hashed = sig.body[len(sig.hashed_part):]
    ulen = int.from_bytes(body_after_hashed[:2], "big")
    assert hexes("unhashed") == body_after_hashed[:2 + ulen].hex()
    assert hexes("digest") == sig.left16.hex()
    digest = hashlib.sha256(image.read_bytes() + sig.hashed_part + sig.trailer).hexdigest()
    assert final["hash"]["digest"] == digest and digest[:4] == sig.left16.hex()
    # in the order they are made: hashed fields, the three hash inputs, digest, value, unhashed
    order = [s.what for s in steps if s.after]
    assert order.index("hash the hashed fields (35 bytes)".replace("35", str(len(sig.hashed_part)))) \
        < order.index("SHA256 digest") < order.index("signature value (the digest, signed)")
    filled = [sum(f["filled"] for f in st["fields"]) for st in states]
    assert filled == sorted(filled) and filled[0] == 1
    assert "signed with the secret key" in frame_of(steps, len(steps) - 1).pictures[0].source


def test_verification_walks_the_trust_store_for_the_name(image: Path, keys, tmp_path: Path) -> None:
    store = trust.TrustStore(root=tmp_path / "keys", system_root=tmp_path / "none")
    trust.signature_path_for(image).write_bytes(pgp.sign(image, keys["Alice"]))
    store.add("example.com", keys["Alice"].public().armored())
    steps = Steps(snapshots=True)
    store.verify_image(image, steps=steps)
    last = [s.after for s in steps if s.after][-1]
    assert [d["label"] for d in last["dirs"]] == ["root.d", "prefix.d/example.com",
                                                  "prefix.d/example.com/hello"]
    on_disk = {d["label"]: sorted(os.listdir(tmp_path / "keys" / d["label"]))
               if (tmp_path / "keys" / d["label"]).is_dir() else [] for d in last["dirs"]}
    assert {d["label"]: d["keys"] for d in last["dirs"]} == on_disk
    assert last["verdict"] is True and last["signer"] == keys["Alice"].fingerprint
    src = frame_of(steps, len(steps) - 1).pictures[0].source
    assert "ACCEPTED" in src and "the signer" in src
    assert Stepper(steps, static=True).static_html().count("<svg") == len(steps)


def test_the_verdict_matrix_names_the_check_that_stops_each_attack(image: Path, keys,
                                                                   tmp_path: Path) -> None:
    store = trust.TrustStore(root=tmp_path / "keys", system_root=tmp_path / "none")
    store.add("example.com", keys["Alice"].public().armored())
    trust.signature_path_for(image).write_bytes(pgp.sign(image, keys["Alice"]))
    evil = tmp_path / "evil.aci"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 1
    evil.write_bytes(bytes(data))
    trust.signature_path_for(evil).write_bytes(trust.signature_path_for(image).read_bytes())
    mine = tmp_path / "mine.aci"
    mine.write_bytes(image.read_bytes())
    trust.signature_path_for(mine).write_bytes(pgp.sign(mine, keys["Mallory"]))
    quirk = trust.TrustStore(root=tmp_path / "keys2", system_root=tmp_path / "none")
    quirk.add("example.com/hell", keys["Mallory"].public().armored())
    html = str(viz.verdict_matrix({"genuine": (store, image, None), "tampered": (store, evil, None),
                                   "own key": (store, mine, None), "prefix": (quirk, mine, None)}))
    rows = {re.search(r"<b>(.*?)</b>", r).group(1): re.findall(r">(✔|✘ stopped here|·)<", r)
            for r in html.split("<tr>")[2:]}
    assert rows["genuine"] == ["✔"] * 4
    assert rows["tampered"] == ["✔", "✘ stopped here", "·", "·"]
    assert rows["own key"] == ["✘ stopped here", "·", "·", "·"]
    assert rows["prefix"] == ["✔", "✔", "✔", "✘ stopped here"]
