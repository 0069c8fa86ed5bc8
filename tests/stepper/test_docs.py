"""docs/course.md shows one screenshot per stepper, each made by `make screenshots` (the files
it references exist, and no screenshot lies there unreferenced)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_stepper_screenshot_is_shown_and_exists() -> None:
    doc = (ROOT / "docs" / "course.md").read_text()
    shown = set(re.findall(r"\]\((img/steppers/[^)]+\.png)\)", doc))
    on_disk = {f"img/steppers/{p.name}" for p in (ROOT / "docs" / "img" / "steppers").glob("*.png")}
    assert shown and shown == on_disk
    for rel in shown:
        assert (ROOT / "docs" / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
