"""sandbox.bounded: the limits table, its overrides, the JSON reader for untrusted text, and
docs/security.md §Limits drawn from the same table."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sandbox import bounded
from sandbox.errors import SandboxError

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"


def test_the_doc_holds_the_limits_table_of_the_code() -> None:
    text = DOC.read_text()
    m = re.search(r"<!-- limits:begin[^\n]*-->\n(.*?)\n<!-- limits:end -->", text, re.S)
    assert m, "docs/security.md has no limits table between its markers"
    assert m.group(1) == bounded.markdown_table(), (
        "docs/security.md §Limits differs from sandbox.bounded.LIMITS; redraw it with\n"
        "  .venv/bin/python tests/test_bounded.py")


def test_every_limit_is_in_the_table_once_with_a_unique_override() -> None:
    names = [lim.name for lim in bounded.LIMITS]
    assert len(names) == len(set(names))
    module_limits = {v.name for v in vars(bounded).values() if isinstance(v, bounded.Limit)}
    assert module_limits == set(names), "a Limit defined in sandbox.bounded is not in LIMITS"
    envs = [lim.env for lim in bounded.LIMITS if lim.env]
    assert len(envs) == len(set(envs)) and all(e.startswith("SANDBOX_") for e in envs)


@pytest.mark.parametrize("text, n", [("123", 123), ("4K", 4096), ("500M", 500 << 20),
                                     ("2G", 2 << 30), ("1GiB", 1 << 30), (" 7 ", 7),
                                     ("1.5G", None), ("-1", None), ("lots", None), ("", None)])
def test_parse_size(text: str, n: int | None) -> None:
    assert bounded.parse_size(text) == n


def test_an_override_is_read_when_used_and_a_bad_one_is_one_sentence(monkeypatch) -> None:
    lim = bounded.MANIFEST_BYTES
    assert lim.value == lim.default
    monkeypatch.setenv(lim.env, "8K")
    assert lim.value == 8192
    monkeypatch.setenv(lim.env, "eight kilobytes")
    with pytest.raises(SandboxError, match=rf"\${lim.env}='eight kilobytes' is not a valid"):
        lim.value
    monkeypatch.setenv(lim.env, "0")
    with pytest.raises(SandboxError, match="positive"):
        lim.value


def test_too_large_names_the_limit_and_how_to_raise_it(monkeypatch) -> None:
    e = bounded.too_large(bounded.MANIFEST_BYTES, "the manifest of x.aci", 5 << 20)
    assert str(e).startswith("The manifest of x.aci is over the MANIFEST_BYTES limit of 1048576 bytes")
    assert "SANDBOX_MAX_MANIFEST_BYTES" in str(e)
    assert "fixed" in str(bounded.too_large(bounded.TAR_HEADER_CHAIN, "a chain", 17))


# ------------------------------------------------------------------------------------- JSON

def deep(n: int, open_: str = "[", close: str = "]") -> str:
    return open_ * n + close * n


@pytest.mark.parametrize("doc", [deep(100_000), '{"a":' * 5000 + "1" + "}" * 5000,
                                 '{"a": ' + deep(65) + "}"])
def test_deep_nesting_is_refused_before_parsing(doc: str) -> None:
    """json.loads raises RecursionError near 1000 levels; the kit stops at JSON_DEPTH."""
    with pytest.raises(bounded.BadJSON, match="nested deeper than 64 levels"):
        bounded.loads(doc, "the document")


def test_nesting_at_the_limit_and_brackets_in_strings_are_fine() -> None:
    assert bounded.loads(deep(64)) == json.loads(deep(64))
    tricky = json.dumps({"s": "[" * 500 + '\\"{' * 300, "t": ['"[[[' * 100]})
    assert bounded.loads(tricky) == json.loads(tricky)


def test_a_depth_scan_agrees_with_a_real_parse() -> None:
    """The pre-scan against an independent count: parse, then measure the parsed tree."""
    def depth(v: object) -> int:
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        return 0
    for doc in ['[1, {"a": [[]]}, "]]]]"]', '{"x": "\\\\", "y": [[["\\"["]]]}', "[]", "7"]:
        d = depth(json.loads(doc))
        assert not bounded.nesting_depth_over(doc, d) and (d == 0 or bounded.nesting_depth_over(doc, d - 1))


@pytest.mark.parametrize("doc, why", [
    ('{"limit": 1e999}', "beyond what a 64-bit float holds"),
    ('{"limit": -1e999}', "beyond what a 64-bit float holds"),
    ('[' + "9" * 4300 + "]", "4300 digits"),
    ('[' + "9" * 5000 + "]", "5000 digits"),
    ('{"a": NaN}', "NaN is not a number"),
    ('[Infinity]', "Infinity is not a number"),
    (b'{"a": "\xff"}', "not UTF-8"),
    ('{"a": 1', "not valid JSON"),
])
def test_numbers_json_cannot_hold_and_broken_text_are_bad_json(doc, why: str) -> None:
    with pytest.raises(bounded.BadJSON, match=why) as e:
        bounded.loads(doc, "the config")
    assert isinstance(e.value, ValueError) and str(e.value).startswith("The config is ")


def test_numbers_a_float_holds_are_fine() -> None:
    doc = '[1e308, -1e308, 5e-324, ' + "9" * 308 + ", 0.5]"
    assert bounded.loads(doc) == json.loads(doc)


def test_size_is_checked_before_anything_is_parsed(monkeypatch) -> None:
    big = json.dumps({"a": "x" * (2 << 20)})
    with pytest.raises(bounded.InputTooLarge, match="MANIFEST_BYTES"):
        bounded.loads(big, "the manifest", limit=bounded.MANIFEST_BYTES)
    monkeypatch.setenv("SANDBOX_MAX_MANIFEST_BYTES", "4M")
    assert bounded.loads(big, "the manifest", limit=bounded.MANIFEST_BYTES)["a"][:3] == "xxx"


def test_read_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not a regular file"):
        bounded.read_file("/dev/zero", bounded.MANIFEST_BYTES)
    p = tmp_path / "big"
    p.write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(bounded.InputTooLarge):
        bounded.read_file(p, bounded.MANIFEST_BYTES)


if __name__ == "__main__":     # redraw docs/security.md's table: .venv/bin/python tests/test_bounded.py
    text = DOC.read_text()
    new = re.sub(r"(<!-- limits:begin[^\n]*-->\n)(.*?)(\n<!-- limits:end -->)",
                 lambda m: m.group(1) + bounded.markdown_table() + m.group(3), text, flags=re.S)
    DOC.write_text(new)
    print("wrote", DOC)


def test_check_file_says_what_is_there_instead(tmp_path) -> None:
    """A device or FIFO named as a key or image file was "does not exist"; each case now says
    what it is, and a regular file (through a link too) passes."""
    import os
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "f")
    os.mkfifo(tmp_path / "fifo")
    for ok in ("f", "link"):
        assert bounded.check_file(tmp_path / ok, "The key file", "fix it") is None
    for name, state in [("missing", "does not exist"), (".", "is a directory"),
                        ("fifo", "is not a regular file (a device or a FIFO)")]:
        with pytest.raises(SandboxError) as e:
            bounded.check_file(tmp_path / name, "The key file", "fix it")
        assert str(e.value) == f"The key file {tmp_path / name} {state}; fix it."
    class FetchLike(SandboxError):
        pass
    with pytest.raises(FetchLike, match="^The image /dev/zero is not a regular file"):
        bounded.check_file("/dev/zero", "The image", "fix it", FetchLike)   # the caller's class
