"""Fixtures for the rendering tests (helpers live in renderkit.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from renderkit import MemSource, StoreBuilder


@pytest.fixture
def mem() -> MemSource:
    return MemSource()


@pytest.fixture
def sb(sandbox_dir: Path, tmp_path: Path) -> StoreBuilder:
    d = tmp_path / "acis"
    d.mkdir()
    return StoreBuilder(d)
