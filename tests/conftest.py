"""Shared test configuration.

Async tests run under Trio only in the directories that opt in (see ``trio_dirs``): the
Textual UI tests need asyncio, so Trio mode is not global.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

TRIO_DIRS = ("server", "protocol", "voice", "client", "devices")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        fn = getattr(item, "obj", None)
        if fn is None or not inspect.iscoroutinefunction(fn):
            continue
        rel = Path(str(item.fspath)).relative_to(here)
        if rel.parts and rel.parts[0] in TRIO_DIRS and not item.get_closest_marker("trio"):
            item.add_marker(pytest.mark.trio)
