from __future__ import annotations

import pytest
from pytest_trio.enable_trio_mode import pytest_fixture_setup

__all__ = ["pytest_fixture_setup"]  # trio mode for async fixtures in this directory


@pytest.fixture(params=["plaintext", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    """Run a test over both transports the server offers."""
    return bool(request.param == "tls")
