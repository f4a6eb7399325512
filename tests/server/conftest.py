from __future__ import annotations

import pytest


@pytest.fixture(params=["plaintext", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    """Run a test over both transports the server offers."""
    return bool(request.param == "tls")
