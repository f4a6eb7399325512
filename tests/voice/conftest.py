"""Trio mode for this directory only: Textual's tests elsewhere need asyncio."""

from __future__ import annotations

import inspect

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        if inspect.iscoroutinefunction(fn) and not item.get_closest_marker("trio"):
            item.add_marker(pytest.mark.trio)
