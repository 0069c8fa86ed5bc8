"""OpenPGP (RFC 4880, as refreshed by RFC 9580) for appc image signatures, written on ``cryptography``.

appc signs an image with an ASCII-armored *detached* OpenPGP signature over the ``.aci`` file
(spec aci.md, "Image Archives"). This module is small enough to read in one sitting:

* packets: old and new header formats, tags, lengths (RFC 9580 §4.2);
* ASCII armor with its CRC-24 checksum (§6);
* v4 public keys: RSA (algorithm 1) and legacy EdDSA/Ed25519 (algorithm 22, what GnuPG 2.2 makes),
  v4 fingerprints (§5.5.4), user IDs, self-signatures, subkeys with binding signatures and the
  embedded primary-key binding ("back signature"), revocations, key expiry;
* v4 signatures with hashed and unhashed subpackets, and exactly which bytes are hashed:
  ``document ‖ signature header + hashed subpackets ‖ 04 FF len32`` (§5.2.4).

Public API (what the rest of the kit and the notebooks use)::

    generate_key(uid, type="rsa"|"ed25519", bits=3072, expires=None) -> SecretKey
    SecretKey.public() -> PublicKey;  .armored() -> bytes;  read_secret_key(bytes) -> SecretKey
    PublicKey.fingerprint (40 lowercase hex), .uids, .subkeys, .armored(), .status()
    read_keys(bytes) -> list[PublicKey]        armored or binary, one or more certificates
    merge(cert, *copies) -> PublicKey          a keyring's import: the union, revocations kept
    revoke(secret, reason, code=REASON_…)      hard (compromised, none) or soft (superseded, retired)
    armor(data, kind) / dearmor(text) / crc24(data)
    sign(data_or_path, secret, armored=True, steps=None) -> bytes
    verify(data_or_path, signature, keyring, steps=None) -> Verification   (raises SignatureError)
    read_signature(bytes) -> Signature;  parse_packets(bytes) -> list[Packet]
    read_signed_message(bytes) -> (literal data, Signature)   an inline-signed message (gpg --sign)
    signed_bytes(signature) -> list[(label, bytes)]   the hashed suffix, for the notebook

Every refusal is a :class:`SignatureError` subclass whose message is one sentence saying why.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from sandbox.errors import SandboxError
from sandbox.steps import Steps, record, snapshotting

Source = Union[bytes, bytearray, memoryview, str, os.PathLike]

# --------------------------------------------------------------------------- constants (§9)

TAGS = {1: "Public-Key Encrypted Session Key", 2: "Signature", 3: "Symmetric-Key Encrypted Session Key",
        4: "One-Pass Signature", 5: "Secret-Key", 6: "Public-Key", 7: "Secret-Subkey",
        8: "Compressed Data", 9: "Symmetrically Encrypted Data", 10: "Marker", 11: "Literal Data",
        12: "Trust", 13: "User ID", 14: "Public-Subkey", 17: "User Attribute",
        18: "Sym. Encrypted and Integrity Protected Data"}
PK_ALGOS = {1: "RSA", 2: "RSA (encrypt only)", 3: "RSA (sign only)", 16: "Elgamal", 17: "DSA",
            18: "ECDH", 19: "ECDSA", 22: "EdDSA (legacy)", 25: "X25519", 27: "Ed25519", 28: "Ed448"}
HASH_ALGOS = {1: "MD5", 2: "SHA1", 3: "RIPEMD160", 8: "SHA256", 9: "SHA384", 10: "SHA512",
              11: "SHA224", 12: "SHA3-256", 14: "SHA3-512"}
HASH_IDS = {v: k for k, v in HASH_ALGOS.items()}
# Data signatures with these are refused: MD5 and SHA-1 are broken for collision resistance.
ACCEPTED_HASHES = {"SHA224", "SHA256", "SHA384", "SHA512", "SHA3-256", "SHA3-512"}
_HASHLIB = {"MD5": "md5", "SHA1": "sha1", "RIPEMD160": "ripemd160", "SHA224": "sha224",
            "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512",
            "SHA3-256": "sha3_256", "SHA3-512": "sha3_512"}
_CRYPTO_HASH = {"SHA1": hashes.SHA1, "SHA224": hashes.SHA224, "SHA256": hashes.SHA256,
                "SHA384": hashes.SHA384, "SHA512": hashes.SHA512,
                "SHA3-256": hashes.SHA3_256, "SHA3-512": hashes.SHA3_512}
SIG_TYPES = {0x00: "binary document", 0x01: "canonical text document", 0x02: "standalone",
             0x10: "generic certification", 0x11: "persona certification",
             0x12: "casual certification", 0x13: "positive certification",
             0x18: "subkey binding", 0x19: "primary key binding", 0x1F: "direct key",
             0x20: "key revocation", 0x28: "subkey revocation", 0x30: "certification revocation",
             0x40: "timestamp", 0x50: "third-party confirmation"}
SUBPACKETS = {2: "signature creation time", 3: "signature expiration time", 4: "exportable",
              5: "trust signature", 6: "regular expression", 7: "revocable",
              9: "key expiration time", 11: "preferred symmetric algorithms",
              12: "revocation key", 16: "issuer key ID", 20: "notation data",
              21: "preferred hash algorithms", 22: "preferred compression algorithms",
              23: "key server preferences", 24: "preferred key server", 25: "primary user ID",
              26: "policy URI", 27: "key flags", 28: "signer's user ID",
              29: "reason for revocation", 30: "features", 31: "signature target",
              32: "embedded signature", 33: "issuer fingerprint",
              34: "preferred AEAD algorithms", 35: "intended recipient fingerprint",
              39: "preferred AEAD ciphersuites"}
# Reason for Revocation (RFC 4880 §5.2.3.23, RFC 9580 §5.2.3.31): the first octet of subpacket 29.
REASON_NONE, REASON_SUPERSEDED, REASON_COMPROMISED, REASON_RETIRED, REASON_UID_INVALID = 0, 1, 2, 3, 32
REVOCATION_REASONS = {REASON_NONE: "no reason specified", REASON_SUPERSEDED: "key superseded",
                      REASON_COMPROMISED: "key compromised", REASON_RETIRED: "key retired",
                      REASON_UID_INVALID: "user ID no longer valid"}
# "Soft" reasons say the key simply stopped being used: what it signed *before* the revocation
# still counts. Every other reason - compromised, none given, a code nobody knows, or no reason
# subpacket at all - is "hard": nothing the key ever signed can be trusted (RFC 9580 §5.2.3.31).
SOFT_REVOCATIONS = frozenset({REASON_SUPERSEDED, REASON_RETIRED, REASON_UID_INVALID})
# Key flags (§5.2.3.29), first octet.
FLAG_CERTIFY, FLAG_SIGN, FLAG_ENCRYPT_COMMS, FLAG_ENCRYPT_STORAGE, FLAG_AUTH = 0x01, 0x02, 0x04, 0x08, 0x20
# The legacy Ed25519 curve OID 1.3.6.1.4.1.11591.15.1 (RFC 9580 §9.2).
ED25519_OID = bytes.fromhex("2b06010401da470f01")
CURVE_OIDS = {ED25519_OID: "Ed25519", bytes.fromhex("2b060104019755010501"): "Curve25519",
              bytes.fromhex("2a8648ce3d030107"): "NIST P-256", bytes.fromhex("2b81040022"): "NIST P-384",
              bytes.fromhex("2b81040023"): "NIST P-521"}
LAB_KEY_COMMENT = "UNPROTECTED LAB KEY - for workshops only, never for real images"

# --------------------------------------------------------------------------- errors


class SignatureError(SandboxError):
    """A signature or key was refused; the message says why in one sentence."""


class MalformedSignature(SignatureError):
    """The bytes are not a readable OpenPGP signature or key."""


class UnsupportedSignature(SignatureError):
    """Readable, but uses a version or algorithm this kit does not implement."""


class WeakHash(SignatureError):
    """The signature uses a hash algorithm that is not acceptable for data (MD5, SHA-1, ...)."""


class BadSignature(SignatureError):
    """The signature does not match the data (tampered file, or a signature of another file)."""


class UnknownSigner(SignatureError):
    """No key in the keyring made this signature."""

    def __init__(self, message: str, *, key_id: str = "", fingerprint: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key_id = key_id
        self.fingerprint = fingerprint


class KeyProblem(SignatureError):
    """The signing key is known but cannot be relied on (see subclasses)."""


class KeyExpired(KeyProblem):
    pass


class KeyRevoked(KeyProblem):
    pass


class NotSigningKey(KeyProblem):
    pass


class InvalidKey(KeyProblem):
    """No valid self-signature / subkey binding."""


class SignatureExpired(SignatureError):
    pass


class TextModeSignature(SignatureError):
    """A canonical-text signature (type 0x01): it survives line-ending changes, so an image could
    be altered and still verify; images need a binary-document signature (type 0x00)."""


# --------------------------------------------------------------------------- packets (§4.2)


@dataclass(frozen=True)
class Packet:
    """One OpenPGP packet: its tag, header form and body, and where it sat in the input."""

    tag: int
    body: bytes
    new_format: bool
    header: bytes
    offset: int
    partial: bool = False   # body was sent in partial-length chunks (new format only)

    @property
    def name(self) -> str:
        return TAGS.get(self.tag, f"unknown tag {self.tag}")

    def __repr__(self) -> str:
        fmt = "new" if self.new_format else "old"
        return f"<Packet {self.tag} {self.name}, {fmt} header {self.header.hex()}, {len(self.body)} bytes>"


def _new_length(data: bytes, i: int) -> tuple[int, int, bool]:
    """A new-format body length at ``data[i]``: (length, bytes used, is_partial)."""
    o1 = data[i]
    if o1 < 192:
        return o1, 1, False
    if o1 < 224:
        return ((o1 - 192) << 8) + data[i + 1] + 192, 2, False
    if o1 == 255:
        return int.from_bytes(data[i + 1:i + 5], "big"), 5, False
    return 1 << (o1 & 0x1F), 1, True


def parse_packets(data: bytes) -> list[Packet]:
    """Split binary OpenPGP data into packets (old and new header formats, partial lengths)."""
    data = bytes(data)
    out: list[Packet] = []
    i = 0
    try:
        while i < len(data):
            start = i
            ctb = data[i]
            if not ctb & 0x80:
                raise MalformedSignature(f"Byte {i} is not an OpenPGP packet header (bit 7 of 0x{ctb:02x} is clear).")
            if ctb & 0x40:                       # new format: tag in the low six bits
                tag = ctb & 0x3F
                i += 1
                length, used, partial = _new_length(data, i)
                i += used
                header = data[start:i]
                chunks, was_partial = [], partial
                while partial:                   # partial body lengths: chunk, length, chunk, ...
                    chunks.append(data[i:i + length])
                    i += length
                    length, used, partial = _new_length(data, i)
                    i += used
                chunks.append(data[i:i + length])
                i += length
                body = b"".join(chunks)
            else:                                # old format: tag in bits 5..2, length type in 1..0
                tag = (ctb >> 2) & 0x0F
                ltype = ctb & 0x03
                i += 1
                if ltype == 3:                   # indeterminate: to the end of the input
                    length = len(data) - i
                else:
                    n = (1, 2, 4)[ltype]
                    length = int.from_bytes(data[i:i + n], "big")
                    i += n
                header = data[start:i]
                body = data[i:i + length]
                i += length
                was_partial = False
            if len(body) != length and not was_partial or i > len(data):
                raise MalformedSignature(f"The packet at byte {start} is cut short (the data ends early).")
            out.append(Packet(tag, body, bool(ctb & 0x40), header, start, was_partial))
    except IndexError as e:
        raise MalformedSignature("The OpenPGP data ends in the middle of a packet header.") from e
    return out


def _encode_length(n: int, two_octet_end: int) -> bytes:
    """The one-, two- or five-octet length of packets and subpackets alike: the two-octet form
    reaches 8383 for a packet (RFC 9580 §4.2.1.2: its first octet is 192–223) and 16319 for a
    subpacket (§5.2.3.7: 192–254, subpackets have no partial lengths)."""
    if n < 192:
        return bytes([n])
    if n < two_octet_end:
        n2 = n - 192
        return bytes([(n2 >> 8) + 192, n2 & 0xFF])
    return b"\xff" + n.to_bytes(4, "big")


def encode_packet(tag: int, body: bytes) -> bytes:
    """A packet with a new-format header (RFC 9580 §4.2.1)."""
    return bytes([0xC0 | tag]) + _encode_length(len(body), 8384) + body


# --------------------------------------------------------------------------- MPIs (§3.2)


def encode_mpi(value: int) -> bytes:
    bits = value.bit_length()
    return bits.to_bytes(2, "big") + value.to_bytes((bits + 7) // 8, "big")


def read_mpi(data: bytes, i: int) -> tuple[int, int]:
    """An MPI at ``data[i]``: (value, index after it)."""
    bits = int.from_bytes(data[i:i + 2], "big")
    n = (bits + 7) // 8
    if i + 2 + n > len(data):
        raise MalformedSignature("A multiprecision integer runs past the end of its packet.")
    return int.from_bytes(data[i + 2:i + 2 + n], "big"), i + 2 + n


# --------------------------------------------------------------------------- armor (§6)

_CRC24_INIT, _CRC24_POLY = 0xB704CE, 0x1864CFB


def crc24(data: bytes) -> int:
    """The armor checksum: CRC-24 with generator 0x864CFB, initialised to 0xB704CE."""
    crc = _CRC24_INIT
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
    return crc & 0xFFFFFF


def armor(data: bytes, kind: str = "SIGNATURE", *, comment: str | None = None) -> bytes:
    """ASCII armor: ``-----BEGIN PGP <kind>-----``, headers, base64 in 64-column lines, ``=CRC``."""
    b64 = base64.b64encode(data).decode()
    lines = [f"-----BEGIN PGP {kind}-----"]
    if comment:
        lines.append(f"Comment: {comment}")
    lines.append("")
    lines += [b64[i:i + 64] for i in range(0, len(b64), 64)]
    lines.append("=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode())
    lines.append(f"-----END PGP {kind}-----")
    return ("\n".join(lines) + "\n").encode()


_BEGIN = re.compile(r"^-----BEGIN PGP ([A-Z ,/0-9]+)-----\s*$")
_CRC_LINE = re.compile(r"^=([A-Za-z0-9+/]{4})\s*$")


def is_armored(data: bytes | str) -> bool:
    head = data[:2048] if isinstance(data, str) else bytes(data[:2048]).decode("latin-1")
    return "-----BEGIN PGP " in head


def dearmor_blocks(text: bytes | str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every armored block in ``text``: (kind, binary data, armor headers). Checks the CRC-24."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("ascii", errors="replace")
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = _BEGIN.match(lines[i].strip())
        if not m:
            i += 1
            continue
        kind = m.group(1)
        i += 1
        headers: dict[str, str] = {}
        while i < len(lines) and lines[i].strip() and ":" in lines[i] and not _CRC_LINE.match(lines[i]):
            k, _, v = lines[i].partition(":")
            headers[k.strip()] = v.strip()
            i += 1
        body, crc = [], None
        while i < len(lines) and not lines[i].startswith("-----END PGP"):
            line = lines[i].strip()
            c = _CRC_LINE.match(line)
            if c:
                crc = c.group(1)
            elif line:
                body.append(line)
            i += 1
        if i >= len(lines):
            raise MalformedSignature(f"The armored {kind} block has no END line.")
        i += 1
        try:
            data = base64.b64decode("".join(body), validate=True)
        except ValueError as e:
            raise MalformedSignature(f"The armored {kind} block is not valid base64.") from e
        if crc is not None and int.from_bytes(base64.b64decode(crc), "big") != crc24(data):
            raise MalformedSignature(f"The armored {kind} block fails its CRC-24 checksum: it was damaged.")
        blocks.append((kind, data, headers))
    if not blocks:
        raise MalformedSignature("The text contains no '-----BEGIN PGP ...-----' armored block.")
    return blocks


def dearmor(text: bytes | str) -> bytes:
    """The binary data of the first armored block (CRC-24 checked)."""
    return dearmor_blocks(text)[0][1]


def _binary(data: bytes | str) -> bytes:
    """Armored or binary input, as binary (all armored blocks concatenated)."""
    if is_armored(data):
        return b"".join(b for _, b, _ in dearmor_blocks(data))
    if isinstance(data, str):
        raise MalformedSignature("The text is neither armored OpenPGP nor binary OpenPGP data.")
    return bytes(data)


# --------------------------------------------------------------------------- subpackets (§5.2.3.7)


@dataclass(frozen=True)
class Subpacket:
    type: int
    critical: bool
    data: bytes

    @property
    def name(self) -> str:
        return SUBPACKETS.get(self.type, f"unknown subpacket {self.type}")

    def encode(self) -> bytes:
        body = bytes([self.type | (0x80 if self.critical else 0)]) + self.data
        return _encode_length(len(body), 16320) + body

    def describe(self) -> str:
        """The value in words (for the packet dump)."""
        problem = subpacket_problem(self)
        if problem:
            return f"malformed, ignored ({problem})"
        d = self.data
        if self.type in (2,):
            return _iso(int.from_bytes(d, "big"))
        if self.type in (3, 9):
            secs = int.from_bytes(d, "big")
            return "never" if secs == 0 else f"{secs} s after creation ({secs / 86400:.1f} days)"
        if self.type == 16:
            return d.hex().upper()
        if self.type == 33:
            return f"v{d[0]} " + d[1:].hex().upper()
        if self.type == 27:
            names = [n for bit, n in ((FLAG_CERTIFY, "certify"), (FLAG_SIGN, "sign"),
                                      (FLAG_ENCRYPT_COMMS, "encrypt-comms"),
                                      (FLAG_ENCRYPT_STORAGE, "encrypt-storage"), (FLAG_AUTH, "auth"))
                     if d and d[0] & bit]
            return ", ".join(names) or "none"
        if self.type == 21:
            return ", ".join(HASH_ALGOS.get(b, str(b)) for b in d)
        if self.type == 29:
            if not d:
                return ""
            why = REVOCATION_REASONS.get(d[0], f"code {d[0]}")
            text = d[1:].decode("utf-8", "replace").strip()
            return why + (f": {text}" if text else "")
        if self.type == 32:
            return f"a {len(d)}-byte signature packet"
        if self.type == 25:
            return "yes" if d and d[0] else "no"
        if self.type == 20:
            flags, nl, vl = d[:4], int.from_bytes(d[4:6], "big"), int.from_bytes(d[6:8], "big")
            name = d[8:8 + nl].decode("utf-8", "replace")
            value = d[8 + nl:8 + nl + vl]
            shown = value.decode("utf-8", "replace") if flags[0] & 0x80 else value.hex()
            return f"{name}={shown}"
        return d.hex()


# RFC 9580 §5.2.3: the body sizes of the subpackets whose size is fixed (or has a minimum);
# a subpacket of another size is malformed, as gpg's parser says ("subpacket too short").
_SUBPACKET_SIZE = {2: (4, 4), 3: (4, 4), 4: (1, 1), 5: (2, 2), 7: (1, 1), 9: (4, 4), 16: (8, 8),
                   25: (1, 1), 29: (1, None), 20: (8, None), 32: (1, None), 33: (1, None),
                   30: (0, None), 27: (0, None), 21: (0, None)}


def parse_subpackets(data: bytes) -> list[Subpacket]:
    """The subpackets of a hashed or unhashed area (§5.2.3.7); any malformed one is a
    MalformedSignature naming it."""
    out = []
    i = 0
    while i < len(data):
        o1 = data[i]
        if o1 < 192:
            n, i = o1, i + 1
        elif o1 < 255:
            if i + 1 >= len(data):
                raise MalformedSignature("A signature subpacket has a bad length.")
            n, i = ((o1 - 192) << 8) + data[i + 1] + 192, i + 2
        else:
            n, i = int.from_bytes(data[i + 1:i + 5], "big"), i + 5
        if n == 0 or i + n > len(data):
            raise MalformedSignature("A signature subpacket has a bad length.")
        t = data[i]
        out.append(Subpacket(t & 0x7F, bool(t & 0x80), data[i + 1:i + n]))
        i += n
    return out


def subpacket_problem(sp: Subpacket) -> str | None:
    """Why a subpacket of a known type cannot be read (its size is not RFC 9580's), else None.
    Such a subpacket is ignored, as gpg ignores it (tests/signing/test_malformed.py asks gpg),
    unless it is critical, which makes the signature unusable (§5.2.3.7)."""
    low, high = _SUBPACKET_SIZE.get(sp.type, (0, None))
    size = len(sp.data)
    if sp.type == 33 and size >= 1:        # issuer fingerprint: version, then 20 (v4) or 32 (v6)
        low = high = 1 + {4: 20, 6: 32}.get(sp.data[0], size - 1)
    elif sp.type == 20 and size >= 8:      # notation: flags, name and value lengths, both
        low = high = 8 + int.from_bytes(sp.data[4:6], "big") + int.from_bytes(sp.data[6:8], "big")
    if size < low or (high is not None and size > high):
        want = f"{low}" if low == high else f"at least {low}"
        return f"{size} bytes long where RFC 9580 says {want}"
    return None


# --------------------------------------------------------------------------- signatures (§5.2)


@dataclass(frozen=True)
class Signature:
    """A v4 signature packet, parsed. ``body`` is the packet body exactly as read."""

    version: int
    sig_type: int
    pk_algo: int
    hash_algo: int
    hashed: tuple[Subpacket, ...]
    unhashed: tuple[Subpacket, ...]
    left16: bytes
    mpis: tuple[int, ...]
    body: bytes

    # -- reading the fields
    @property
    def hash_name(self) -> str:
        return HASH_ALGOS.get(self.hash_algo, f"hash #{self.hash_algo}")

    @property
    def type_name(self) -> str:
        return SIG_TYPES.get(self.sig_type, f"type 0x{self.sig_type:02x}")

    def _first(self, t: int, hashed_only: bool = True) -> Subpacket | None:
        """The first readable subpacket of type ``t`` (malformed ones are skipped, as gpg does)."""
        for sp in self.hashed if hashed_only else (*self.hashed, *self.unhashed):
            if sp.type == t and subpacket_problem(sp) is None:
                return sp
        return None

    def critical_problem(self) -> str | None:
        """A critical hashed subpacket this kit cannot honour (unknown or malformed), if any:
        RFC 9580 §5.2.3.7 says the signature must then be treated as invalid."""
        for sp in self.hashed:
            if not sp.critical:
                continue
            if sp.type not in SUBPACKETS:
                return f"a critical subpacket ({sp.type}) this kit does not understand"
            problem = subpacket_problem(sp)
            if problem:
                return f"a critical {sp.name} subpacket that is {problem}"
        return None

    @property
    def created(self) -> int:
        sp = self._first(2)
        return int.from_bytes(sp.data, "big") if sp else 0

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created, timezone.utc)

    @property
    def expires_after(self) -> int | None:
        """Signature expiration (seconds after creation), None if it never expires."""
        sp = self._first(3)
        v = int.from_bytes(sp.data, "big") if sp else 0
        return v or None

    @property
    def key_expires_after(self) -> int | None:
        """Key expiration carried by a self-signature or binding (seconds after key creation)."""
        sp = self._first(9)
        v = int.from_bytes(sp.data, "big") if sp else 0
        return v or None

    @property
    def key_flags(self) -> int | None:
        sp = self._first(27)
        return sp.data[0] if sp and sp.data else (0 if sp else None)

    @property
    def issuer_fingerprint(self) -> str | None:
        sp = self._first(33, hashed_only=False)
        return sp.data[1:].hex() if sp and sp.data and sp.data[0] == 4 else None

    @property
    def issuer_key_id(self) -> str | None:
        """16 hex digits: from the issuer key ID subpacket, or the end of the issuer fingerprint."""
        sp = self._first(16, hashed_only=False)
        if sp:
            return sp.data.hex()
        fpr = self.issuer_fingerprint
        return fpr[-16:] if fpr else None

    @property
    def embedded(self) -> "Signature | None":
        """The embedded signature (subpacket 32), None if absent or unreadable."""
        sp = self._first(32, hashed_only=False)
        if sp is None:
            return None
        try:
            return parse_signature_body(sp.data)
        except SignatureError:
            return None

    @property
    def revocation_reason(self) -> str | None:
        sp = self._first(29)
        return sp.describe() if sp else None

    @property
    def revocation_code(self) -> int | None:
        """The reason code of a revocation (None when it carries no reason subpacket)."""
        sp = self._first(29)
        return sp.data[0] if sp and sp.data else None

    @property
    def hard_revocation(self) -> bool:
        """A revocation that withdraws everything the key ever signed: any reason but
        superseded / retired / user ID no longer valid, including no reason at all."""
        return self.revocation_code not in SOFT_REVOCATIONS

    # -- the hashed suffix (§5.2.4)
    @property
    def hashed_part(self) -> bytes:
        """version, type, public-key algorithm, hash algorithm, hashed subpacket length and data."""
        n = int.from_bytes(self.body[4:6], "big")
        return self.body[:6 + n]

    @property
    def trailer(self) -> bytes:
        """``04 FF`` and the length of :attr:`hashed_part` as 4 octets (v4 signatures)."""
        return b"\x04\xff" + len(self.hashed_part).to_bytes(4, "big")

    def packet(self) -> bytes:
        return encode_packet(2, self.body)

    def armored(self) -> bytes:
        return armor(self.packet(), "SIGNATURE")


def parse_signature_body(body: bytes) -> Signature:
    body = bytes(body)
    if not body:
        raise MalformedSignature("The signature packet is empty.")
    if body[0] != 4:
        raise UnsupportedSignature(
            f"This is a version {body[0]} signature; this kit verifies version 4 signatures (what gpg 2.2 makes).")
    try:
        sig_type, pk_algo, hash_algo = body[1], body[2], body[3]
        hlen = int.from_bytes(body[4:6], "big")
        hashed = parse_subpackets(body[6:6 + hlen])
        i = 6 + hlen
        ulen = int.from_bytes(body[i:i + 2], "big")
        unhashed = parse_subpackets(body[i + 2:i + 2 + ulen])
        i += 2 + ulen
        left16 = body[i:i + 2]
        i += 2
        mpis = []
        while i < len(body):
            v, i = read_mpi(body, i)
            mpis.append(v)
        if len(left16) != 2 or not mpis:
            raise MalformedSignature("The signature packet is cut short.")
    except IndexError as e:
        raise MalformedSignature("The signature packet is cut short.") from e
    return Signature(4, sig_type, pk_algo, hash_algo, tuple(hashed), tuple(unhashed), left16,
                     tuple(mpis), body)


def read_signatures(data: bytes | str) -> list[Signature]:
    """The signature packets in armored or binary input (other packets are ignored)."""
    packets = parse_packets(_binary(data))
    sigs = [parse_signature_body(p.body) for p in packets if p.tag == 2]
    if not sigs:
        raise MalformedSignature("The data contains no signature packet (tag 2).")
    return sigs


def read_signature(data: bytes | str) -> Signature:
    """The first signature packet in armored or binary input."""
    return read_signatures(data)[0]


# --------------------------------------------------------------------------- signed messages (§11.3)

MAX_MESSAGE_BYTES = 16 << 20     # a signed message's literal data, decompressed: bounded


def _decompress(algo: int, body: bytes) -> bytes:
    """A Compressed Data packet's contents (RFC 4880 §5.6): 0 none, 1 ZIP (raw deflate),
    2 ZLIB, 3 BZip2 — never more than :data:`MAX_MESSAGE_BYTES`."""
    import bz2
    import zlib
    if algo == 0:
        out = body
    elif algo in (1, 2):
        d = zlib.decompressobj(-15 if algo == 1 else 15)
        try:
            out = d.decompress(body, MAX_MESSAGE_BYTES + 1)
        except zlib.error as e:
            raise MalformedSignature(f"The compressed data does not decompress ({e}).") from e
    elif algo == 3:
        d = bz2.BZ2Decompressor()
        try:
            out = d.decompress(body, MAX_MESSAGE_BYTES + 1)
        except (OSError, ValueError) as e:
            raise MalformedSignature(f"The compressed data does not decompress ({e}).") from e
    else:
        raise UnsupportedSignature(f"The message uses compression algorithm {algo}, which this kit "
                                   "does not read.")
    if len(out) > MAX_MESSAGE_BYTES:
        raise MalformedSignature(f"The message decompresses to more than {MAX_MESSAGE_BYTES} bytes.")
    return out


def read_signed_message(data: bytes | str) -> tuple[bytes, Signature]:
    """An inline-signed message — ``[Compressed[`` One-Pass Signature, Literal Data,
    Signature ``]]``, what ``gpg --sign`` writes and containers/image's "simple signing" stores
    as ``signature-1`` — as (the literal data, its signature). Verify it with
    ``verify(literal, signature.packet(), keyring)``."""
    packets = parse_packets(_binary(data))
    for _ in range(2):                        # at most one level of compression
        if len(packets) == 1 and packets[0].tag == 8 and packets[0].body:
            body = packets[0].body
            packets = parse_packets(_decompress(body[0], body[1:]))
    literal = [p for p in packets if p.tag == 11]
    sigs = [p for p in packets if p.tag == 2]
    if len(literal) != 1 or not sigs:
        raise MalformedSignature("This is not a signed message: it needs one literal data packet "
                                 "and a signature packet.")
    b = literal[0].body
    if len(b) < 6 or 2 + b[1] + 4 > len(b):
        raise MalformedSignature("The literal data packet is cut short.")
    return b[2 + b[1] + 4:], parse_signature_body(sigs[0].body)


# --------------------------------------------------------------------------- keys (§5.5)


@dataclass(frozen=True)
class KeyPacket:
    """A v4 public-key body (tag 6 or 14), with the private key when we hold it."""

    body: bytes                       # the public part, exactly as hashed for the fingerprint
    created: int
    algo: int
    params: dict
    secret: object | None = None      # a cryptography private key, or None

    @property
    def fingerprint(self) -> str:
        """v4 fingerprint: SHA-1 over 0x99, a two-octet length and the public-key body (§5.5.4.2)."""
        return hashlib.sha1(self.hash_prefix()).hexdigest()

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]

    @property
    def algo_name(self) -> str:
        name = PK_ALGOS.get(self.algo, f"algorithm {self.algo}")
        if self.algo in (1, 2, 3) and "n" in self.params:
            return f"{name} {self.params['n'].bit_length()}"
        if "curve" in self.params:
            return f"{name} {self.params['curve']}"
        return name

    def hash_prefix(self) -> bytes:
        """How a key enters a signature hash: 0x99, two-octet length, body."""
        return b"\x99" + len(self.body).to_bytes(2, "big") + self.body

    def public(self) -> "KeyPacket":
        return replace(self, secret=None)

    def crypto_public(self):
        if self.algo in (1, 3):
            return rsa.RSAPublicNumbers(self.params["e"], self.params["n"]).public_key()
        if self.algo == 22 and self.params.get("curve") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(self.params["point"][1:])
        raise UnsupportedSignature(
            f"Key {self.key_id.upper()} uses {self.algo_name}, which this kit cannot verify (it supports RSA and Ed25519).")

    def verify_digest(self, hash_name: str, digest: bytes, mpis: tuple[int, ...]) -> bool:
        """Check the signature values over a digest computed per §5.2.4."""
        pub = self.crypto_public()
        try:
            if self.algo in (1, 3):
                if len(mpis) != 1:
                    return False
                size = (self.params["n"].bit_length() + 7) // 8
                pub.verify(mpis[0].to_bytes(size, "big"), digest, padding.PKCS1v15(),
                           utils.Prehashed(_CRYPTO_HASH[hash_name]()))
            else:                                    # EdDSA signs the digest itself; r and s are MPIs
                if len(mpis) != 2:
                    return False
                pub.verify(mpis[0].to_bytes(32, "big") + mpis[1].to_bytes(32, "big"), digest)
        except (InvalidSignature, OverflowError, KeyError):
            return False
        return True

    def sign_digest(self, hash_name: str, digest: bytes) -> tuple[int, ...]:
        if self.secret is None:
            raise SignatureError(f"Key {self.key_id.upper()} has no secret part here, so it cannot sign.")
        if self.algo in (1, 3):
            raw = self.secret.sign(digest, padding.PKCS1v15(), utils.Prehashed(_CRYPTO_HASH[hash_name]()))
            return (int.from_bytes(raw, "big"),)
        raw = self.secret.sign(digest)
        return (int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _need(body: bytes, i: int, n: int, what: str) -> None:
    if i + n > len(body):
        raise MalformedSignature(f"The key packet is cut short: it ends inside its {what}.")


def _parse_key_body(body: bytes) -> tuple[KeyPacket, int]:
    """A v4 public-key body (RFC 9580 §5.5.2): (KeyPacket, index where the public part ends).
    A body cut short anywhere is a MalformedSignature; parameters no real key has (an RSA
    exponent of 1, an Ed25519 point that is not 0x40 and 32 bytes) are an InvalidKey."""
    if not body or body[0] != 4:
        v = body[0] if body else "?"
        raise UnsupportedSignature(f"This is a version {v} key; this kit reads version 4 keys.")
    _need(body, 1, 5, "creation time and algorithm")
    created = int.from_bytes(body[1:5], "big")
    algo = body[5]
    i = 6
    params: dict = {}
    if algo in (1, 2, 3):
        params["n"], i = read_mpi(body, i)
        params["e"], i = read_mpi(body, i)
    elif algo == 17:
        for k in ("p", "q", "g", "y"):
            params[k], i = read_mpi(body, i)
    elif algo in (16, 20):
        for k in ("p", "g", "y"):
            params[k], i = read_mpi(body, i)
    elif algo in (18, 19, 22):
        _need(body, i, 1, "curve OID length")
        n = body[i]
        _need(body, i + 1, n, "curve OID")
        oid = body[i + 1:i + 1 + n]
        params["curve"] = CURVE_OIDS.get(oid, oid.hex())
        i += 1 + n
        _need(body, i, 2, "public point")
        bits = int.from_bytes(body[i:i + 2], "big")
        nb = (bits + 7) // 8
        _need(body, i + 2, nb, "public point")
        params["point"] = body[i + 2:i + 2 + nb]
        i += 2 + nb
        if algo == 18:                       # ECDH KDF parameters
            _need(body, i, 1, "KDF parameters")
            _need(body, i + 1, body[i], "KDF parameters")
            i += 1 + body[i]
    elif algo in (25, 27):
        _need(body, i, 32, "public key")
        i += 32
    elif algo in (26, 28):
        _need(body, i, 57, "public key")
        i += 57
    else:
        i = len(body)
    key = KeyPacket(body[:i], created, algo, params)
    _check_parameters(key)
    return key, i


def _check_parameters(key: KeyPacket) -> None:
    """The public parameters of the algorithms this kit verifies with must be ones a real key
    can have; ``cryptography`` says which (RSA: 3 <= e < n, e and n odd; Ed25519: 32 bytes)."""
    problem = None
    if key.algo in (1, 2, 3):
        try:
            rsa.RSAPublicNumbers(key.params["e"], key.params["n"]).public_key()
        except ValueError as e:
            problem = f"RSA parameters no real key has ({e}; e = {str(key.params['e'])[:20]})"
    elif key.algo == 22 and key.params.get("curve") == "Ed25519":
        point = key.params["point"]
        if len(point) != 33 or point[0] != 0x40:
            problem = (f"an Ed25519 public point of {len(point)} bytes (a real one is 0x40 and "
                       "32 bytes)")
    if problem:
        raise InvalidKey(f"Key {key.key_id.upper()} has {problem}; it is refused.")


def _parse_secret_body(body: bytes) -> KeyPacket:
    """A v4 secret-key body (§5.5.3): the public part, then unencrypted secret MPIs (usage 0)."""
    key, i = _parse_key_body(body)
    _need(body, i, 1, "secret key usage")
    usage = body[i]
    if usage != 0:
        raise UnsupportedSignature("The secret key is passphrase-protected; export it without protection for the lab.")
    i += 1
    try:
        if key.algo in (1, 3):
            d, i = read_mpi(body, i)
            p, i = read_mpi(body, i)
            q, i = read_mpi(body, i)
            n, e = key.params["n"], key.params["e"]
            priv = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                         rsa.RSAPublicNumbers(e, n)).private_key()
        elif key.algo == 22 and key.params.get("curve") == "Ed25519":
            seed, i = read_mpi(body, i)
            priv = ed25519.Ed25519PrivateKey.from_private_bytes(seed.to_bytes(32, "big"))
        else:
            raise UnsupportedSignature(f"This kit cannot use a {key.algo_name} secret key.")
    except (ValueError, OverflowError, ZeroDivisionError) as e:
        raise InvalidKey(f"The secret key {key.key_id.upper()} does not hold a usable private "
                         f"key ({e}); export it again.") from e
    return replace(key, secret=priv)


def _secret_body(key: KeyPacket) -> bytes:
    """Serialise the unprotected secret-key body: public body, usage 0, MPIs, 2-octet checksum."""
    if key.algo in (1, 3):
        nums = key.secret.private_numbers()
        p, q = sorted((nums.p, nums.q))     # OpenPGP wants p < q and u = p^-1 mod q
        mpis = b"".join(encode_mpi(v) for v in (nums.d, p, q, pow(p, -1, q)))
    else:
        from cryptography.hazmat.primitives import serialization as ser
        seed = key.secret.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        mpis = encode_mpi(int.from_bytes(seed, "big"))
    return key.body + b"\x00" + mpis + (sum(mpis) % 65536).to_bytes(2, "big")


@dataclass
class UserID:
    uid: str
    raw: bytes
    sigs: list[Signature] = field(default_factory=list)

    def hash_prefix(self) -> bytes:
        return b"\xb4" + len(self.raw).to_bytes(4, "big") + self.raw


@dataclass
class Subkey:
    key: KeyPacket
    sigs: list[Signature] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint


@dataclass
class KeyStatus:
    """What a certificate's own signatures say about one key, at one moment."""

    fingerprint: str
    usable: bool
    problem: str | None        # one sentence when not usable
    can_sign: bool
    expires: int | None        # unix time, None = never
    revoked: bool
    kind: str = "ok"           # ok | revoked | expired | no-sign | invalid
    revocation: "Signature | None" = None   # the revocation that applies (or a soft one that
    #                                         does not apply yet: signatures made before it count)


@dataclass
class PublicKey:
    """An OpenPGP certificate (a "transferable public key", §10.1): a primary key, its user IDs,
    subkeys, and the signatures that bind them."""

    primary: KeyPacket
    direct_sigs: list[Signature] = field(default_factory=list)   # revocations and direct-key sigs
    user_ids: list[UserID] = field(default_factory=list)
    subkeys: list[Subkey] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return self.primary.fingerprint

    @property
    def key_id(self) -> str:
        return self.primary.key_id

    @property
    def uids(self) -> list[str]:
        return [u.uid for u in self.user_ids]

    @property
    def created(self) -> int:
        return self.primary.created

    def keys(self) -> list[KeyPacket]:
        return [self.primary] + [s.key for s in self.subkeys]

    def find(self, fpr_or_keyid: str) -> KeyPacket | None:
        want = fpr_or_keyid.lower()
        for k in self.keys():
            if k.fingerprint == want or k.key_id == want:
                return k
        return None

    def packets(self) -> list[tuple[int, bytes]]:
        out = [(6, self.primary.body)] + [(2, s.body) for s in self.direct_sigs]
        for u in self.user_ids:
            out += [(13, u.raw)] + [(2, s.body) for s in u.sigs]
        for sk in self.subkeys:
            out += [(14, sk.key.body)] + [(2, s.body) for s in sk.sigs]
        return out

    def to_bytes(self) -> bytes:
        return b"".join(encode_packet(t, b) for t, b in self.packets())

    def armored(self) -> bytes:
        return armor(self.to_bytes(), "PUBLIC KEY BLOCK")

    # -- validity from the certificate's own signatures (§5.2.3.x, §10.1)
    def _self_sig_ok(self, sig: Signature, *targets: bytes, signer: KeyPacket | None = None) -> bool:
        signer = signer or self.primary
        if sig.issuer_key_id not in (None, signer.key_id):
            return False
        if sig.hash_algo not in HASH_ALGOS or HASH_ALGOS[sig.hash_algo] not in _CRYPTO_HASH:
            return False
        if sig.critical_problem():
            return False
        h = hashlib.new(_HASHLIB[sig.hash_name])
        h.update(self.primary.hash_prefix())
        for t in targets:
            h.update(t)
        h.update(sig.hashed_part)
        h.update(sig.trailer)
        digest = h.digest()
        if digest[:2] != sig.left16:
            return False
        try:
            return signer.verify_digest(sig.hash_name, digest, sig.mpis)
        except SignatureError:
            return False

    def _primary_sig(self, now: int) -> Signature | None:
        """The newest valid self-signature (over a non-revoked user ID, or direct key)."""
        best: Signature | None = None
        for s in self.direct_sigs:
            if s.sig_type == 0x1F and s.created <= now and self._self_sig_ok(s):
                best = s if best is None or s.created > best.created else best
        for u in self.user_ids:
            certs = [s for s in u.sigs if 0x10 <= s.sig_type <= 0x13 and s.created <= now
                     and self._self_sig_ok(s, u.hash_prefix())]
            revs = [s for s in u.sigs if s.sig_type == 0x30 and self._self_sig_ok(s, u.hash_prefix())]
            for s in certs:
                if any(r.created >= s.created for r in revs):
                    continue
                best = s if best is None or s.created > best.created else best
        return best

    def _revocation(self, sigs: list[Signature], *targets: bytes, sig_type: int) -> Signature | None:
        """The revocation that matters among the valid ones: a hard one if there is any (it
        withdraws everything), else the earliest soft one."""
        valid = [s for s in sigs if s.sig_type == sig_type and self._self_sig_ok(s, *targets)]
        hard = [s for s in valid if s.hard_revocation]
        if hard:
            return hard[0]
        return min(valid, key=lambda s: s.created, default=None)

    @staticmethod
    def _revoked_for(rev: Signature | None, signed_at: int) -> bool:
        """Does ``rev`` withdraw a signature made at ``signed_at``? A hard revocation withdraws
        every signature; a soft one only those made at or after its own creation time."""
        return rev is not None and (rev.hard_revocation or signed_at >= rev.created)

    @staticmethod
    def _revocation_problem(what: str, fpr: str, rev: Signature) -> str:
        why = rev.revocation_reason
        if rev.hard_revocation:
            return (f"{what} {fpr.upper()} was revoked by its owner" + (f" ({why})" if why else "")
                    + "; a hard revocation withdraws every signature the key ever made.")
        return (f"{what} {fpr.upper()} was retired by its owner on {_iso(rev.created)} ({why}); "
                "signatures made after that no longer count.")

    def status(self, at: int | float | None = None, *, signed_at: int | float | None = None
               ) -> list[KeyStatus]:
        """The primary key and each subkey: usable for signing data at time ``at`` (default now)?

        ``signed_at`` is when the signature in question was made (default ``at``): a *soft*
        revocation (superseded, retired) only withdraws signatures made at or after it."""
        now = int(time.time() if at is None else at)
        when = now if signed_at is None else int(signed_at)
        out = []
        p = self.primary
        prev = self._revocation(self.direct_sigs, sig_type=0x20)
        rev = prev if self._revoked_for(prev, when) else None
        self_sig = self._primary_sig(now)
        expires = (p.created + self_sig.key_expires_after) if self_sig and self_sig.key_expires_after else None
        flags = self_sig.key_flags if self_sig else None
        can_sign = flags is None or bool(flags & FLAG_SIGN)
        primary_problem, pkind = None, "ok"
        if rev is not None:
            pkind = "revoked"
            primary_problem = self._revocation_problem("key", p.fingerprint, rev)
        elif self_sig is None:
            pkind = "invalid"
            primary_problem = (f"key {p.fingerprint.upper()} has no valid self-signature, so nothing "
                               "binds it to a user ID.")
        elif expires is not None and expires <= now:
            pkind = "expired"
            primary_problem = f"key {p.fingerprint.upper()} expired on {_iso(expires)}."
        problem, kind = primary_problem, pkind
        if problem is None and not can_sign:
            kind = "no-sign"
            problem = f"key {p.fingerprint.upper()} is not marked for signing (key flags: {_flags(flags)})."
        out.append(KeyStatus(p.fingerprint, problem is None, problem, can_sign, expires, rev is not None, kind,
                             prev))
        for sk in self.subkeys:
            k = sk.key
            target = k.hash_prefix()
            ssrev = self._revocation(sk.sigs, target, sig_type=0x28)
            srev = ssrev if self._revoked_for(ssrev, when) else None
            bindings = [s for s in sk.sigs if s.sig_type == 0x18 and s.created <= now
                        and self._self_sig_ok(s, target)]
            binding = max(bindings, key=lambda s: s.created, default=None)
            sflags = binding.key_flags if binding else None
            s_can_sign = bool(sflags is not None and sflags & FLAG_SIGN)
            s_exp = (k.created + binding.key_expires_after) if binding and binding.key_expires_after else None
            problem, kind = None, "ok"
            if primary_problem:
                kind = pkind
                problem = f"subkey {k.fingerprint.upper()} belongs to a primary key that is not usable: {primary_problem}"
            elif srev is not None:
                kind = "revoked"
                problem = self._revocation_problem("subkey", k.fingerprint, srev)
            elif binding is None:
                kind = "invalid"
                problem = f"subkey {k.fingerprint.upper()} has no valid binding signature from its primary key."
            elif s_exp is not None and s_exp <= now:
                kind = "expired"
                problem = f"subkey {k.fingerprint.upper()} expired on {_iso(s_exp)}."
            elif not s_can_sign:
                kind = "no-sign"
                problem = f"subkey {k.fingerprint.upper()} is not marked for signing (key flags: {_flags(sflags)})."
            else:
                back = binding.embedded
                if back is None or back.sig_type != 0x19 or not self._self_sig_ok(back, target, signer=k):
                    kind = "invalid"
                    problem = (f"signing subkey {k.fingerprint.upper()} is not cross-certified "
                               "(no valid primary-key binding signature 0x19).")
            out.append(KeyStatus(k.fingerprint, problem is None, problem, s_can_sign, s_exp, srev is not None,
                                 kind, ssrev or (prev if primary_problem else None)))
        return out

    def check_signer(self, key: KeyPacket, at: int | float | None = None, *,
                     signed_at: int | float | None = None) -> None:
        """Raise the matching :class:`KeyProblem` unless ``key`` may sign data at ``at`` (for a
        signature made at ``signed_at``: see :meth:`status`)."""
        for st in self.status(at, signed_at=signed_at):
            if st.fingerprint != key.fingerprint or st.usable:
                continue
            cls = {"revoked": KeyRevoked, "expired": KeyExpired, "no-sign": NotSigningKey}.get(st.kind, InvalidKey)
            raise cls("The signing " + (st.problem or "key is not usable."))


@dataclass
class SecretKey:
    """A certificate whose key packets carry their private keys (unprotected: a lab key)."""

    cert: PublicKey

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint

    @property
    def uids(self) -> list[str]:
        return self.cert.uids

    def public(self) -> PublicKey:
        c = self.cert
        return PublicKey(c.primary.public(), list(c.direct_sigs),
                         [UserID(u.uid, u.raw, list(u.sigs)) for u in c.user_ids],
                         [Subkey(s.key.public(), list(s.sigs)) for s in c.subkeys])

    def to_bytes(self) -> bytes:
        tags = {6: 5, 14: 7}
        out = []
        keys = iter(self.cert.keys())
        for tag, body in self.cert.packets():
            if tag in tags:
                k = next(keys)
                out.append(encode_packet(tags[tag], _secret_body(k) if k.secret is not None else body))
            else:
                out.append(encode_packet(tag, body))
        return b"".join(out)

    def armored(self) -> bytes:
        return armor(self.to_bytes(), "PRIVATE KEY BLOCK", comment=LAB_KEY_COMMENT)

    def signing_key(self, at: int | float | None = None) -> KeyPacket:
        """The key ``sign`` uses: the newest usable signing subkey, else the primary key."""
        status = {s.fingerprint: s for s in self.cert.status(at)}
        subs = [s.key for s in self.cert.subkeys if s.key.secret is not None and status[s.key.fingerprint].usable]
        if subs:
            return max(subs, key=lambda k: k.created)
        st = status[self.cert.primary.fingerprint]
        if not st.usable:
            raise KeyProblem("This secret key cannot sign: " + (st.problem or "it is not usable."))
        return self.cert.primary


def _certs_from_packets(packets: list[Packet]) -> list[PublicKey]:
    certs: list[PublicKey] = []
    cur: PublicKey | None = None
    target: list[Signature] | None = None   # where the next signature packets belong
    for p in packets:
        if p.tag in (6, 5):
            key = _parse_secret_body(p.body) if p.tag == 5 else _parse_key_body(p.body)[0]
            cur = PublicKey(key)
            certs.append(cur)
            target = cur.direct_sigs
        elif cur is None:
            if p.tag in (10, 12):
                continue
            raise MalformedSignature(f"The key data starts with a {TAGS.get(p.tag, p.tag)} packet, not a public key.")
        elif p.tag == 13:
            u = UserID(p.body.decode("utf-8", "replace"), p.body)
            cur.user_ids.append(u)
            target = u.sigs
        elif p.tag in (14, 7):
            key = _parse_secret_body(p.body) if p.tag == 7 else _parse_key_body(p.body)[0]
            sk = Subkey(key)
            cur.subkeys.append(sk)
            target = sk.sigs
        elif p.tag == 17:                    # user attribute (photo): kept out, with its signatures
            target = []
        elif p.tag == 2 and target is not None:
            try:
                target.append(parse_signature_body(p.body))
            except UnsupportedSignature:
                pass                         # e.g. an old v3 certification: ignore it, as gpg does
    return certs


def read_keys(data: bytes | str) -> list[PublicKey]:
    """Every certificate in armored or binary key data (secret parts are dropped)."""
    certs = _certs_from_packets(parse_packets(_binary(data)))
    if not certs:
        raise MalformedSignature("The data contains no OpenPGP public key.")
    return [SecretKey(c).public() for c in certs]


def merge(first: PublicKey, *others: PublicKey) -> PublicKey:
    """One certificate from several copies of the same key, the way a keyring imports a key it
    already holds: every user ID, subkey and signature that any copy carries is kept, nothing
    is dropped. So a copy fetched *before* a revocation cannot undo the revocation."""
    for o in others:
        if o.fingerprint != first.fingerprint:
            raise SignatureError(f"Cannot merge key {o.fingerprint.upper()} into key "
                                 f"{first.fingerprint.upper()}: they are different keys.")

    def union(*lists: list[Signature]) -> list[Signature]:
        seen: dict[bytes, Signature] = {}
        for sigs in lists:
            for sig in sigs:
                seen.setdefault(sig.body, sig)
        return list(seen.values())

    copies = (first, *others)
    uids: dict[bytes, list[list[Signature]]] = {}
    subs: dict[str, tuple[KeyPacket, list[list[Signature]]]] = {}
    for c in copies:
        for u in c.user_ids:
            uids.setdefault(u.raw, []).append(u.sigs)
        for sk in c.subkeys:
            subs.setdefault(sk.fingerprint, (sk.key, []))[1].append(sk.sigs)
    return PublicKey(first.primary, union(*(c.direct_sigs for c in copies)),
                     [UserID(raw.decode("utf-8", "replace"), raw, union(*sigs)) for raw, sigs in uids.items()],
                     [Subkey(key, union(*sigs)) for key, sigs in subs.values()])


def holds_secret_key(data: bytes | str) -> bool:
    """Whether key data carries a secret-key or secret-subkey packet (tags 5, 7; RFC 4880
    §5.5.1.3-4): a file that must never be handed out, e.g. copied into a trust store."""
    return any(p.tag in (5, 7) for p in parse_packets(_binary(data)))


def read_secret_key(data: bytes | str) -> SecretKey:
    """The first certificate with its private keys (unprotected secret-key packets)."""
    packets = parse_packets(_binary(data))
    if not any(p.tag == 5 for p in packets):
        raise SignatureError("This file holds no secret key; sign with the *secret* key file (e.g. secret.asc).")
    return SecretKey(_certs_from_packets(packets)[0])


# --------------------------------------------------------------------------- making signatures


def _make_signature(signer: KeyPacket, sig_type: int, hash_name: str, prefix_parts: Iterable[bytes],
                    hashed: list[Subpacket], unhashed: list[Subpacket] | None = None,
                    *, data: Source | None = None, steps: Steps | None = None,
                    progress: bool = False) -> Signature:
    """Build and sign a v4 signature packet body (§5.2.3), hashing prefix parts, then data.

    With a snapshotting ``steps`` (a stepper asked) each field is recorded as it is added, with
    the packet as far as it is assembled (:class:`_Assembly`)."""
    hsub = b"".join(sp.encode() for sp in hashed)
    usub = b"".join(sp.encode() for sp in (unhashed or []))
    head = bytes([4, sig_type, signer.algo, HASH_IDS[hash_name]]) + len(hsub).to_bytes(2, "big") + hsub
    film = _Assembly(steps, sig_type, signer, hash_name, hashed, unhashed or []) \
        if snapshotting(steps) else None
    h = hashlib.new(_HASHLIB[hash_name])
    for part in prefix_parts:
        h.update(part)
    if data is not None:
        n = _hash_source(h, data, steps, progress)
        if film is not None:
            film.fed("document", n)
    h.update(head)
    if film is not None:
        film.fed("hashed", len(head))
    h.update(b"\x04\xff" + len(head).to_bytes(4, "big"))
    digest = h.digest()
    if film is not None:
        film.fed("trailer", 6, b"\x04\xff" + len(head).to_bytes(4, "big"))
        film.digest(digest)
    mpis = signer.sign_digest(hash_name, digest)
    body = head + len(usub).to_bytes(2, "big") + usub + digest[:2] + b"".join(encode_mpi(m) for m in mpis)
    if film is not None:
        film.signed(b"".join(encode_mpi(m) for m in mpis), len(usub))
    return parse_signature_body(body)


class _Assembly:
    """A signature packet put together field by field, for a stepper (states of kind ``pgp``):
    every field of the packet in packet order, each filled once it exists, and what went into
    the hash (RFC 9580 §5.2.4: document ‖ hashed fields ‖ trailer)."""

    def __init__(self, steps: Steps | None, sig_type: int, signer: KeyPacket, hash_name: str,
                 hashed: list[Subpacket], unhashed: list[Subpacket]) -> None:
        self.steps = steps
        hsub = b"".join(sp.encode() for sp in hashed)
        usub = b"".join(sp.encode() for sp in unhashed)
        self.fields: list[dict[str, Any]] = [
            {"label": "version", "value": "4", "hex": "04", "role": "hashed"},
            {"label": "signature type", "value": SIG_TYPES.get(sig_type, hex(sig_type)),
             "hex": f"{sig_type:02x}", "role": "hashed"},
            {"label": "public-key algorithm", "value": PK_ALGOS.get(signer.algo, str(signer.algo)),
             "hex": f"{signer.algo:02x}", "role": "hashed"},
            {"label": "hash algorithm", "value": hash_name, "hex": f"{HASH_IDS[hash_name]:02x}",
             "role": "hashed"},
            {"label": "hashed subpackets: length", "value": f"{len(hsub)} bytes",
             "hex": len(hsub).to_bytes(2, "big").hex(" "), "role": "hashed"},
            *({"label": f"hashed subpacket {sp.type}: {sp.name}", "value": sp.describe(),
               "hex": sp.encode().hex(" "), "role": "hashed"} for sp in hashed),
            {"label": "unhashed subpackets: length", "value": f"{len(usub)} bytes",
             "hex": len(usub).to_bytes(2, "big").hex(" "), "role": "unhashed"},
            *({"label": f"unhashed subpacket {sp.type}: {sp.name}", "value": sp.describe(),
               "hex": sp.encode().hex(" "), "role": "unhashed"} for sp in unhashed),
            {"label": "left 16 bits of the digest", "value": "", "hex": "", "role": "digest"},
            {"label": "signature value", "value": "", "hex": "", "role": "value"},
        ]
        for f in self.fields:
            f["filled"] = False
        self.hash: dict[str, Any] = {"algorithm": hash_name, "document": None, "hashed": None,
                                     "trailer": None, "digest": None}
        for i, f in enumerate(self.fields):    # the hashed part is written first
            if f["role"] == "hashed":
                f["filled"] = True
                self._record("write", f["label"], i, value=f["value"], bytes=f["hex"])

    def _state(self, current: int | None) -> dict[str, Any]:
        return {"kind": "pgp", "fields": [dict(f) for f in self.fields], "hash": dict(self.hash),
                "current": current}

    def _record(self, action: str, what: str, current: int | None, **detail: Any) -> None:
        record(self.steps, action, what, after=self._state(current), **detail)

    def fed(self, part: str, n: int, data: bytes = b"") -> None:
        self.hash[part] = n
        what = {"document": f"hash the document ({n:,} bytes, first)",
                "hashed": f"hash the hashed fields ({n} bytes)",
                "trailer": "hash the trailer: 04 FF + the hashed length as 4 bytes"}[part]
        self._record("hash", what, None, algorithm=self.hash["algorithm"],
                     **({"bytes": data.hex(" ")} if data else {}))

    def digest(self, digest: bytes) -> None:
        self.hash["digest"] = digest.hex()
        self._record("hash", f"{self.hash['algorithm']} digest", None, digest=digest.hex())
        i = next(i for i, f in enumerate(self.fields) if f["role"] == "digest")
        self.fields[i].update(filled=True, hex=digest[:2].hex(" "),
                              value="a quick check: a verifier compares it before the math")
        self._record("write", "left 16 bits of the digest", i, bytes=digest[:2].hex(" "))

    def signed(self, mpis: bytes, unhashed_len: int) -> None:
        i = next(i for i, f in enumerate(self.fields) if f["role"] == "value")
        self.fields[i].update(filled=True, hex=mpis[:24].hex(" ") + (" …" if len(mpis) > 24 else ""),
                              value=f"{len(mpis)} bytes: the digest signed with the secret key")
        self._record("sign", "signature value (the digest, signed)", i, bytes=len(mpis))
        for j, f in enumerate(self.fields):  # carried along, covered by nothing
            if f["role"] == "unhashed":
                f["filled"] = True
                self._record("write", f["label"], j, value=f["value"], bytes=f["hex"])


def _common_subpackets(signer: KeyPacket, created: int) -> list[Subpacket]:
    return [Subpacket(2, False, created.to_bytes(4, "big")),
            Subpacket(33, False, b"\x04" + bytes.fromhex(signer.fingerprint))]


RSA_BITS = (2048, 4096)     # gpg's range without --expert; beyond it a key takes minutes, and
                            # --bits 99999999 generated for ever


def _new_crypto_key(type: str, bits: int):
    if type == "rsa":
        if not RSA_BITS[0] <= bits <= RSA_BITS[1]:
            raise SignatureError(f"RSA keys are {RSA_BITS[0]} to {RSA_BITS[1]} bits here (got "
                                 f"{bits:,}); the default, 3072, is what gpg makes.")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits), 1
    if type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate(), 22
    raise SignatureError(f"Unknown key type {type!r}; use 'rsa' or 'ed25519'.")


def _key_packet(priv, algo: int, created: int) -> KeyPacket:
    if algo == 1:
        pub = priv.public_key().public_numbers()
        body = bytes([4]) + created.to_bytes(4, "big") + b"\x01" + encode_mpi(pub.n) + encode_mpi(pub.e)
    else:
        from cryptography.hazmat.primitives import serialization as ser
        raw = priv.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        body = (bytes([4]) + created.to_bytes(4, "big") + bytes([22, len(ED25519_OID)]) + ED25519_OID
                + encode_mpi(int.from_bytes(b"\x40" + raw, "big")))
    key, _ = _parse_key_body(body)
    return replace(key, secret=priv)


def generate_key(uid: str, type: str = "rsa", *, bits: int = 3072, expires: int | None = None,
                 created: int | None = None, flags: int = FLAG_CERTIFY | FLAG_SIGN,
                 steps: Steps | None = None) -> SecretKey:
    """A new certificate: primary key (certify+sign), one user ID, a positive self-signature 0x13.

    RSA is the default because rkt's verifier (Go x/crypto/openpgp) cannot read EdDSA keys.
    ``expires`` is seconds after creation (key expiration time subpacket 9).
    """
    if not uid.strip():
        raise SignatureError("A key needs a user ID such as 'Alice <alice@example.com>'.")
    created = int(time.time()) if created is None else int(created)
    priv, algo = _new_crypto_key(type, bits)
    primary = _key_packet(priv, algo, created)
    record(steps, "generate", primary.algo_name, fingerprint=primary.fingerprint)
    u = UserID(uid, uid.encode())
    hashed = _common_subpackets(primary, created) + [
        Subpacket(27, False, bytes([flags])),
        Subpacket(21, False, bytes([10, 9, 8])),             # prefer SHA512, SHA384, SHA256
        Subpacket(30, False, b"\x01"),                        # features: modification detection
        Subpacket(25, False, b"\x01"),                        # primary user ID
    ]
    if expires:
        hashed.append(Subpacket(9, False, int(expires).to_bytes(4, "big")))
    sig = _make_signature(primary, 0x13, "SHA256", [primary.hash_prefix(), u.hash_prefix()], hashed,
                          [Subpacket(16, False, bytes.fromhex(primary.key_id))])
    u.sigs.append(sig)
    record(steps, "sign", "self-signature 0x13", uid=uid)
    return SecretKey(PublicKey(primary, [], [u], []))


def add_subkey(secret: SecretKey, type: str = "rsa", *, bits: int = 3072, flags: int = FLAG_SIGN,
               expires: int | None = None, created: int | None = None,
               cross_certify: bool = True) -> SecretKey:
    """Add a subkey bound by a 0x18 signature; a signing subkey also carries its own 0x19
    "primary key binding" signature, embedded, proving the subkey agrees (cross-certification)."""
    created = int(time.time()) if created is None else int(created)
    priv, algo = _new_crypto_key(type, bits)
    sub = _key_packet(priv, algo, created)
    primary = secret.cert.primary
    parts = [primary.hash_prefix(), sub.hash_prefix()]
    hashed = _common_subpackets(primary, created) + [Subpacket(27, False, bytes([flags]))]
    if expires:
        hashed.append(Subpacket(9, False, int(expires).to_bytes(4, "big")))
    if flags & FLAG_SIGN and cross_certify:     # False only to show what verifiers refuse
        back = _make_signature(sub, 0x19, "SHA256", parts, _common_subpackets(sub, created),
                               [Subpacket(16, False, bytes.fromhex(sub.key_id))])
        hashed.append(Subpacket(32, False, back.body))
    binding = _make_signature(primary, 0x18, "SHA256", parts, hashed,
                              [Subpacket(16, False, bytes.fromhex(primary.key_id))])
    cert = secret.cert
    return SecretKey(PublicKey(cert.primary, list(cert.direct_sigs), list(cert.user_ids),
                               cert.subkeys + [Subkey(sub, [binding])]))


def revoke(secret: SecretKey, reason: str = "", *, code: int = REASON_NONE, subkey: str | None = None,
           created: int | None = None) -> SecretKey:
    """Add a key revocation (0x20) — or, with ``subkey``, a subkey revocation (0x28) — carrying
    a Reason for Revocation subpacket: ``code`` is one of :data:`REVOCATION_REASONS`
    (:data:`REASON_SUPERSEDED` and :data:`REASON_RETIRED` are soft: earlier signatures keep
    counting; the others are hard), ``reason`` a human-readable text."""
    if not 0 <= code <= 255:
        raise SignatureError(f"A revocation reason code is one octet (0-255), not {code}.")
    created = int(time.time()) if created is None else int(created)
    cert = secret.cert
    primary = cert.primary
    hashed = _common_subpackets(primary, created) + [Subpacket(29, False, bytes([code]) + reason.encode())]
    unhashed = [Subpacket(16, False, bytes.fromhex(primary.key_id))]
    if subkey is None:
        sig = _make_signature(primary, 0x20, "SHA256", [primary.hash_prefix()], hashed, unhashed)
        return SecretKey(PublicKey(primary, cert.direct_sigs + [sig], cert.user_ids, cert.subkeys))
    subs = []
    for sk in cert.subkeys:
        if sk.fingerprint == subkey.lower() or sk.key.key_id == subkey.lower():
            sig = _make_signature(primary, 0x28, "SHA256", [primary.hash_prefix(), sk.key.hash_prefix()],
                                  hashed, unhashed)
            sk = Subkey(sk.key, sk.sigs + [sig])
        subs.append(sk)
    return SecretKey(PublicKey(primary, cert.direct_sigs, cert.user_ids, subs))


def _hash_source(h, source: Source, steps: Steps | None = None, progress: bool = False) -> int:
    """Feed the document into ``h``: bytes as they are, or a file read in 1 MiB chunks
    (with a tqdm bar when ``progress`` and the file is big enough to wait for)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        h.update(source)
        return len(source)
    n = 0
    size = os.path.getsize(source)
    bar = None
    if progress and size >= 64 << 20:
        from sandbox._progress import tqdm_class
        bar = tqdm_class(auto=False)(total=size, unit="B", unit_scale=True, desc=f"hashing {Path(source).name}", leave=False)
    with open(source, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    record(steps, "read", str(source), bytes=n)
    return n


def sign(data_or_path: Source, secret: SecretKey, armored: bool = True, steps: Steps | None = None,
         *, hash_algo: str = "SHA256", created: int | None = None, progress: bool = False,
         notations: dict[str, str] | None = None) -> bytes:
    """A detached binary-document signature (type 0x00) over the bytes of a file (appc: the .aci).

    ``notations`` become human-readable notation subpackets (type 20, hashed), e.g.
    ``{"build@example.com": "ci-1234"}``: signed statements that travel with the signature."""
    if hash_algo not in ACCEPTED_HASHES:
        raise WeakHash(f"{hash_algo} is not acceptable for signing data; use SHA256 or SHA512.")
    created = int(time.time()) if created is None else int(created)
    key = secret.signing_key(created)
    hashed = _common_subpackets(key, created)
    for name, value in (notations or {}).items():
        if "@" not in name:
            raise SignatureError(f"Notation names look like name@domain (got {name!r}).")
        n, v = name.encode(), value.encode()
        hashed.append(Subpacket(20, False, b"\x80\x00\x00\x00" + len(n).to_bytes(2, "big")
                                + len(v).to_bytes(2, "big") + n + v))
    sig = _make_signature(key, 0x00, hash_algo, [], hashed, [Subpacket(16, False, bytes.fromhex(key.key_id))],
                          data=data_or_path, steps=steps, progress=progress)
    record(steps, "sign", "detached signature 0x00", key=key.fingerprint, hash=hash_algo)
    return sig.armored() if armored else sig.packet()


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class Verification:
    """A good signature from a usable key."""

    signer_fingerprint: str       # the key that made it (a subkey, or the primary)
    primary_fingerprint: str      # the certificate's primary key: what trust stores file it under
    uids: tuple[str, ...]
    hash_algo: str
    created: datetime
    digest: str                   # hex digest of document ‖ hashed part ‖ trailer
    signature: Signature
    notes: tuple[str, ...] = ()   # e.g. the key was retired (softly) after this signature

    def __str__(self) -> str:
        who = ", ".join(self.uids) or "(no user ID)"
        return (f"Good signature from {who}, key {group_fingerprint(self.signer_fingerprint)}, "
                f"{self.hash_algo}, made {self.created.isoformat()}"
                + "".join(f" (note: {n})" for n in self.notes))


def signed_bytes(sig: Signature) -> list[tuple[str, bytes]]:
    """What is hashed after the document, labelled (for the notebook's highlighted view)."""
    hp = sig.hashed_part
    return [("version, type, key algorithm, hash algorithm", hp[:4]),
            ("hashed subpacket length", hp[4:6]),
            ("hashed subpackets", hp[6:]),
            ("trailer: 04 FF and length of the above", sig.trailer)]


def _lookup(keyring: Iterable[PublicKey], sig: Signature) -> tuple[PublicKey, KeyPacket] | None:
    fpr, kid = sig.issuer_fingerprint, sig.issuer_key_id
    for cert in keyring:
        for k in cert.keys():
            if (fpr and k.fingerprint == fpr) or (not fpr and kid and k.key_id == kid):
                return cert, k
    return None


def verify(data_or_path: Source, signature: bytes | str, keyring: Iterable[PublicKey],
           steps: Steps | None = None, *, at: int | float | None = None,
           progress: bool = False) -> Verification:
    """Check a detached signature over a file or bytes against the keys in ``keyring``.

    Order of checks: readable → document signature → acceptable hash → signer in keyring →
    digest and public-key math → the signer's key usable (self-signature or binding, not expired,
    not revoked, signing flag) → signature not expired. Raises a :class:`SignatureError` subclass.
    """
    keyring = list(keyring)
    now = int(time.time() if at is None else at)
    sigs = list({s.body: s for s in read_signatures(signature)}.values())  # copies: one check
    # the document is hashed once per hash algorithm, whatever the number of signatures: the
    # same good signature 8,000 times in a 1 MiB .asc used to hash the image 8,000 times
    hashed: dict[str, Any] = {}
    results = [_verify_one(data_or_path, sig, keyring, now, steps, progress, hashed)
               for sig in sigs]
    return results[0]


def _verify_one(source: Source, sig: Signature, keyring: list[PublicKey], now: int,
                steps: Steps | None, progress: bool = False,
                hashed: dict[str, Any] | None = None) -> Verification:
    record(steps, "read", "signature packet", type=sig.type_name, hash=sig.hash_name,
           issuer=sig.issuer_fingerprint or sig.issuer_key_id)
    if sig.sig_type == 0x01:
        # RFC 9580 §5.2.1.2: a text signature hashes the document with every line ending made
        # CR LF, so moving a CR between lines changes the file but not the digest. An image is
        # bytes: only a binary-document signature (0x00) pins every one of them.
        record(steps, "check", "binary document signature", ok=False, type="0x01 text")
        raise TextModeSignature(
            "This is a canonical-text signature (type 0x01), which still verifies after line "
            "endings in the file change; an image needs a binary signature (type 0x00).",
            hint="Sign the image with `sandbox sign`, or with `gpg --detach-sign` without --textmode.")
    if sig.sig_type != 0x00:
        raise BadSignature(f"This is a {sig.type_name} signature, not a signature over a file.")
    if sig.hash_name not in ACCEPTED_HASHES:
        raise WeakHash(f"The signature uses {sig.hash_name}, which is not acceptable for data "
                       "(MD5 and SHA-1 are broken); re-sign with SHA256 or better.")
    critical = sig.critical_problem()
    if critical:
        raise UnsupportedSignature(f"The signature has {critical}, so it cannot be relied on.")
    found = _lookup(keyring, sig)
    issuer = (sig.issuer_fingerprint or sig.issuer_key_id or "?").upper()
    if found is None:
        record(steps, "check", "signer in keyring", ok=False, issuer=issuer)
        raise UnknownSigner(f"The signature was made by key {issuer}, which is not in the keyring.",
                            key_id=sig.issuer_key_id or "", fingerprint=sig.issuer_fingerprint)
    cert, key = found
    record(steps, "check", "signer in keyring", ok=True, key=key.fingerprint)
    hashed = {} if hashed is None else hashed
    if sig.hash_name not in hashed:
        hashed[sig.hash_name] = hashlib.new(_HASHLIB[sig.hash_name])
        _hash_source(hashed[sig.hash_name], source, steps, progress)
    h = hashed[sig.hash_name].copy()
    h.update(sig.hashed_part)
    h.update(sig.trailer)
    digest = h.digest()
    record(steps, "hash", "document ‖ hashed part ‖ trailer", algo=sig.hash_name, digest=digest.hex())
    if digest[:2] != sig.left16 or not key.verify_digest(sig.hash_name, digest, sig.mpis):
        record(steps, "check", "signature math", ok=False, left16=sig.left16.hex(), ours=digest[:2].hex())
        raise BadSignature("The file does not match the signature: it was changed after signing, "
                           "or the signature belongs to another file.")
    record(steps, "check", "signature math", ok=True, algo=key.algo_name)
    if sig.created < key.created:
        raise InvalidKey("The signature claims to be older than the key that made it, which is impossible.")
    cert.check_signer(key, now, signed_at=sig.created)
    notes: list[str] = []
    st = next(s for s in cert.status(now, signed_at=sig.created) if s.fingerprint == key.fingerprint)
    if st.revocation is not None:           # soft, and later than the signature: it still counts
        notes.append(f"the key was retired on {_iso(st.revocation.created)} "
                     f"({st.revocation.revocation_reason}); this signature was made before that, "
                     "so it still counts")
    record(steps, "check", "signing key usable", ok=True, key=key.fingerprint, **(
        {"note": notes[0]} if notes else {}))
    if sig.expires_after and sig.created + sig.expires_after <= now:
        raise SignatureExpired(f"The signature expired on {_iso(sig.created + sig.expires_after)}.")
    return Verification(key.fingerprint, cert.fingerprint, tuple(cert.uids), sig.hash_name,
                        sig.created_at, digest.hex(), sig, tuple(notes))


# --------------------------------------------------------------------------- showing


def group_fingerprint(fpr: str) -> str:
    """``8B86 DE38 ...``: upper case, groups of four (how gpg and rkt show fingerprints)."""
    f = fpr.upper()
    return " ".join(f[i:i + 4] for i in range(0, len(f), 4))


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _flags(flags: int | None) -> str:
    if flags is None:
        return "none given"
    return Subpacket(27, False, bytes([flags])).describe()


@dataclass
class DumpItem:
    """One packet in a dump: its header and a list of (field, value) lines, nested subpackets."""

    offset: int
    tag: int
    name: str
    header: str
    length: int
    fields: list[tuple[str, str]]
    hashed: list[tuple[str, str, bool]] = field(default_factory=list)    # (name, value, critical)
    unhashed: list[tuple[str, str, bool]] = field(default_factory=list)


def dump(data: bytes | str) -> list[DumpItem]:
    """A packet-by-packet description of armored or binary OpenPGP data (like ``gpg --list-packets``)."""
    out = []
    for p in parse_packets(_binary(data)):
        fields: list[tuple[str, str]] = []
        item = DumpItem(p.offset, p.tag, p.name, f"{p.header.hex()} ({'new' if p.new_format else 'old'} format)",
                        len(p.body), fields)
        if p.tag == 2:
            try:
                s = parse_signature_body(p.body)
            except SignatureError as e:
                fields.append(("error", str(e)))
            else:
                fields += [("version", "4"), ("type", f"0x{s.sig_type:02x} {s.type_name}"),
                           ("public-key algorithm", f"{s.pk_algo} {PK_ALGOS.get(s.pk_algo, '?')}"),
                           ("hash algorithm", f"{s.hash_algo} {s.hash_name}"),
                           ("left 16 bits of digest", s.left16.hex()),
                           ("signature values", ", ".join(f"MPI {m.bit_length()} bits" for m in s.mpis))]
                item.hashed = [(sp.name, sp.describe(), sp.critical) for sp in s.hashed]
                item.unhashed = [(sp.name, sp.describe(), sp.critical) for sp in s.unhashed]
        elif p.tag in (5, 6, 7, 14):
            try:
                k, _ = _parse_key_body(p.body)
            except SignatureError as e:
                fields.append(("error", str(e)))
            else:
                fields += [("version", "4"), ("created", _iso(k.created)),
                           ("algorithm", f"{k.algo} {k.algo_name}"),
                           ("fingerprint", group_fingerprint(k.fingerprint)),
                           ("key ID", k.key_id.upper())]
                if p.tag in (5, 7):
                    fields.append(("secret part", "unprotected (lab key)"))
        elif p.tag == 13:
            fields.append(("user ID", p.body.decode("utf-8", "replace")))
        out.append(item)
    return out


def dump_text(data: bytes | str) -> str:
    lines = []
    for it in dump(data):
        lines.append(f"@{it.offset}: packet {it.tag} {it.name}, header {it.header}, body {it.length} bytes")
        lines += [f"    {k}: {v}" for k, v in it.fields]
        for title, sps in (("hashed subpackets", it.hashed), ("unhashed subpackets", it.unhashed)):
            if sps or it.tag == 2:
                lines.append(f"    {title}:")
                lines += [f"      {n}{' (critical)' if c else ''}: {v}" for n, v, c in sps]
    return "\n".join(lines)
