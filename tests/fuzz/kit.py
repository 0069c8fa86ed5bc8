"""Shared pieces of the fuzz suite: JSON values, mutations, and the one assertion."""
from __future__ import annotations

import json
from typing import Any, Callable

from hypothesis import note
from hypothesis import strategies as st

from sandbox.errors import SandboxError

# JSON leaves, including the numbers that broke parsers (huge, tiny, negative zero, floats)
LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
          | st.sampled_from(["", "0", "-1", "10.0.0.0/24", "sha512-" + "a" * 128, "../x", "a/b",
                             "/", "eth0", "1e999", "latest", "linux", "amd64"]))
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)

# raw text put in place of a JSON value: what json.dumps never writes
RAW_NUMBERS = ["1e999", "-1e999", "9" * 400, "9" * 5000, "NaN", "Infinity", "-0", "1E+2",
               "[" * 200 + "]" * 200, '"\\ud800"', "0x10", "01"]


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indexes) into a JSON document."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


def set_at(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: set_at(doc[head], rest, value)}
    out = list(doc)
    out[head] = set_at(doc[head], rest, value)
    return out


def drop_at(doc: Any, path: tuple) -> Any:
    if len(path) == 1:
        if isinstance(doc, dict):
            return {k: v for k, v in doc.items() if k != path[0]}
        return [v for i, v in enumerate(doc) if i != path[0]]
    head = path[0]
    if isinstance(doc, dict):
        return {**doc, head: drop_at(doc[head], path[1:])}
    out = list(doc)
    out[head] = drop_at(doc[head], path[1:])
    return out


@st.composite
def mutated_json(draw: Any, base: Any, rounds: int = 3) -> bytes:
    """``base`` with a few random edits (a value replaced by any JSON, a key dropped, a raw
    number or nesting spliced into the text, bytes flipped), serialized."""
    doc = base
    for _ in range(draw(st.integers(1, rounds))):
        where = draw(st.sampled_from(paths(doc)))
        how = draw(st.sampled_from(["replace", "drop", "grow"]))
        if how == "replace":
            doc = set_at(doc, where, draw(JSON))
        elif how == "drop" and where:
            doc = drop_at(doc, where)
        elif how == "grow":
            doc = set_at(doc, where, [draw(JSON), doc if not where else draw(JSON)])
    text = json.dumps(doc)
    if draw(st.booleans()):            # splice a raw token in place of one value
        marker = '"@@"'
        where = draw(st.sampled_from(paths(doc)))
        if where:
            text = json.dumps(set_at(doc, where, "@@")).replace(marker, draw(st.sampled_from(RAW_NUMBERS)), 1)
    data = text.encode()
    if draw(st.integers(0, 4)) == 0:   # sometimes: byte-level damage
        data = draw(byte_mutation(data))
    return data


@st.composite
def byte_mutation(draw: Any, data: bytes, max_edits: int = 4) -> bytes:
    """A few byte-level edits: flip, overwrite, insert, delete, truncate, duplicate a run."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        if not out:
            out += draw(st.binary(min_size=1, max_size=8))
            continue
        i = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        if kind == "flip":
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            out[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[i:i + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del out[i:]
        else:
            j = min(len(out), i + draw(st.integers(1, 64)))
            out[j:j] = out[i:j]
    return bytes(out)


def only_kit_errors(fn: Callable[..., Any], *args: Any, show: Any = None, **kw: Any) -> Any:
    """Call ``fn``; a SandboxError is an answer, anything else fails the test with the input."""
    note(f"input: {shown(show if show is not None else args)}")
    try:
        return fn(*args, **kw)
    except SandboxError as e:
        assert str(e).strip(), "a kit error without a message"
        return e


def shown(x: Any, limit: int = 600) -> str:
    """The input as a reproducible literal, cut to ``limit`` characters."""
    r = repr(x)
    return r if len(r) <= limit else r[:limit] + f"... ({len(r)} characters)"
