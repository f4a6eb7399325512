"""Shared test configuration: pytest-trio's trio mode, for some directories only.

The Textual UI tests need asyncio, so trio mode cannot be global (the ``trio_mode`` ini
option). pytest-trio's own pieces do it per directory: ``automark`` here marks the async
tests collected under ``TRIO_DIRS`` (the collection hook sees every item, so it must
filter), and each of those directories' ``conftest.py`` imports pytest-trio's
``pytest_fixture_setup``, which pytest calls only for tests under that directory, so that
async fixtures there run under Trio too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_trio.plugin import automark

TRIO_DIRS = ("server", "protocol", "voice", "client", "devices")
HERE = Path(__file__).parent


def _in_trio_dir(item: pytest.Item) -> bool:
    parts = item.path.relative_to(HERE).parts
    return bool(parts) and parts[0] in TRIO_DIRS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    automark([item for item in items if _in_trio_dir(item)])
