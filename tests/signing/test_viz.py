"""The notebook's pictures render with `dot` and show what they claim."""
from __future__ import annotations

from pathlib import Path

from sandbox.trust import pgp
from sandbox.trust import truststore as trust
from sandbox.viz import signing as viz

KEY = pgp.generate_key("Alice <alice@example.com>", "ed25519")


def test_packets_picture_renders() -> None:
    g = viz.packets(KEY.public().armored(), "Alice")
    svg = g.pipe(format="svg").decode()
    assert "User ID" in svg and "positive certification" in svg
    sig = pgp.sign(b"doc", KEY)
    svg = viz.packets(sig).pipe(format="svg").decode()
    assert "hashed subpackets" in svg and "unhashed subpackets" in svg


def test_hashed_bytes_shows_the_signed_suffix(tmp_path: Path) -> None:
    doc = tmp_path / "doc.aci"
    doc.write_bytes(b"x" * 1000)
    sig = pgp.read_signature(pgp.sign(doc, KEY))
    out = viz.hashed_bytes(sig, doc)
    assert out._repr_html_() == str(out)
    assert sig.trailer.hex(" ") in out and "1,000 bytes" in out and sig.left16.hex() in out


def test_keyring_picture_marks_whole_segment_prefixes(tmp_path: Path) -> None:
    store = trust.TrustStore(tmp_path / "t", tmp_path / "s")
    store.add("example.com/hell", KEY.public().armored())
    store.add("example.com", KEY.public().armored())
    g = viz.keyring(store, "example.com/hello")
    svg = g.pipe(format="svg").decode()
    assert "prefix.d/example.com/hell" in svg
    # only the whole-segment prefix has an edge to the image name
    assert "prefix_example_com -> name" in g.source and "prefix_example_com_hell -> name" not in g.source
