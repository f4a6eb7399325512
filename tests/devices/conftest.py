"""Trio mode for this directory (see tests/conftest.py)."""

from pytest_trio.enable_trio_mode import pytest_fixture_setup

__all__ = ["pytest_fixture_setup"]
