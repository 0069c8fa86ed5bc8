"""Images need binary-document signatures (type 0x00): a canonical-text signature (0x01) is
refused with a sentence. gpg is the oracle for why: it says "Good signature" for a 0x01
signature over a file whose line endings were changed after signing — the change the kit's
verifier accepted too before it refused text signatures."""
from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.trust import pgp
from sandbox.trust.truststore import TrustStore

from .conftest import needs_gpg

KEY = pgp.generate_key("Text Mode <text@example.com>", bits=2048)


def text_signature(data: bytes) -> bytes:
    """A 0x01 signature made the way gpg --textmode makes one: the document canonicalised to
    CR LF line endings, then the hashed suffix (RFC 9580 §5.2.1.2, §5.2.4)."""
    key = KEY.signing_key()
    canonical = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    sig = pgp._make_signature(key, 0x01, "SHA256", [], pgp._common_subpackets(key, 1_700_000_000),
                              [pgp.Subpacket(16, False, bytes.fromhex(key.key_id))],
                              data=canonical)
    return sig.armored()


ORIGINAL = b"manifest line one\r\nline two\nline three\n"
MOVED_CR = b"manifest line one\nline two\r\nline three\n"     # a CR moved to another line


def test_a_text_signature_is_refused_even_over_the_file_it_signed() -> None:
    sig = text_signature(ORIGINAL)
    with pytest.raises(pgp.TextModeSignature, match=r"canonical-text signature \(type 0x01\)"):
        pgp.verify(ORIGINAL, sig, [KEY.public()])
    with pytest.raises(pgp.TextModeSignature):
        pgp.verify(MOVED_CR, sig, [KEY.public()])


def test_a_binary_signature_pins_every_byte() -> None:
    sig = pgp.sign(ORIGINAL, KEY)
    assert pgp.verify(ORIGINAL, sig, [KEY.public()]).hash_algo == "SHA256"
    with pytest.raises(pgp.BadSignature):
        pgp.verify(MOVED_CR, sig, [KEY.public()])


@needs_gpg
def test_gpg_calls_the_changed_file_good_and_the_kit_refuses_it(gnupg, tmp_path: Path) -> None:
    gnupg.import_(KEY.armored())
    gnupg.run("--import-ownertrust", input=f"{KEY.fingerprint.upper()}:6:\n".encode())
    original, changed = tmp_path / "hello.aci", tmp_path / "hello-changed.aci"
    original.write_bytes(ORIGINAL)
    changed.write_bytes(MOVED_CR)
    sig = gnupg.run("--local-user", KEY.fingerprint, "--textmode", "--armor", "--detach-sign",
                    "--output", "-", str(original)).stdout
    assert pgp.read_signature(sig).sig_type == 0x01           # gpg made a text signature
    verdict, status = gnupg.verify(sig, changed)
    assert verdict == "good", status                          # gpg: the changed file is "good"
    with pytest.raises(pgp.TextModeSignature):
        pgp.verify(changed, sig, [KEY.public()])              # the kit: refused, with a sentence


def test_the_trust_store_and_the_cli_refuse_it_with_one_sentence(sandbox_dir, tmp_path, run_cli,
                                                                  monkeypatch) -> None:
    sysdir = tmp_path / "system-trust"
    sysdir.mkdir()
    monkeypatch.setenv("SANDBOX_SYSTEM_TRUSTEDKEYS", str(sysdir))
    TrustStore().add(None, KEY.public().armored(), root=True)
    f = tmp_path / "doc.aci"
    f.write_bytes(ORIGINAL)
    (tmp_path / "doc.aci.asc").write_bytes(text_signature(ORIGINAL))
    with pytest.raises(pgp.TextModeSignature):
        TrustStore().verify(f, (tmp_path / "doc.aci.asc").read_bytes(), "example.com/doc")
    rc, out, err = run_cli("verify", f, "--signature", tmp_path / "doc.aci.asc",
                           "--name", "example.com/doc")
    assert rc != 0 and "type 0x01" in err and "Traceback" not in err, err
