"""Layering: the pure packages load no I/O or UI library, the server loads no audio stack.

Each case imports one module in a fresh interpreter (this venv's python) and looks at
`sys.modules`: an import anywhere in the chain counts, not only the module's own lines.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import echomesh_trio.audio
import echomesh_trio.client
import echomesh_trio.protocol
import echomesh_trio.voice

IO_AND_UI = ("trio", "socket", "sounddevice", "textual")
AUDIO_STACK = ("numpy", "opuslib")
SERVER_MUST_NOT_LOAD = ("numpy", "opuslib", "sounddevice", "soxr", "textual", "scipy")
PURE_CLIENT_STATE = ("outbox", "backoff", "talk", "event_queue", "events")
"""The client's decisions, with no I/O: tested with hypothesis, usable anywhere."""


def _modules(package: object) -> list[str]:
    path = package.__path__  # type: ignore[attr-defined]
    name = package.__name__  # type: ignore[attr-defined]
    return [name] + [f"{name}.{m.name}" for m in pkgutil.iter_modules(path)]


def _loaded(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize(
    "module",
    ["echomesh_trio.media", *_modules(echomesh_trio.protocol), *_modules(echomesh_trio.voice)],
)
def test_protocol_media_and_voice_are_pure(module: str) -> None:
    forbidden = IO_AND_UI if module == "echomesh_trio.media" else IO_AND_UI + AUDIO_STACK
    assert _loaded(module) & set(forbidden) == set()


@pytest.mark.parametrize("module", _modules(echomesh_trio.audio))
def test_audio_loads_no_io_or_ui(module: str) -> None:
    assert _loaded(module) & set(IO_AND_UI) == set()


@pytest.mark.parametrize("module", ["echomesh_trio.cli", "echomesh_trio.server.app"])
def test_the_server_loads_no_audio_or_ui(module: str) -> None:
    assert _loaded(module) & set(SERVER_MUST_NOT_LOAD) == set()


@pytest.mark.parametrize("module", _modules(echomesh_trio.client))
def test_the_client_library_loads_no_ui_and_no_server(module: str) -> None:
    loaded = _full_names(module)
    assert "textual" not in {m.split(".")[0] for m in loaded}
    assert not {m for m in loaded if m.startswith("echomesh_trio.server")}


@pytest.mark.parametrize(
    "module",
    [m for m in _modules(echomesh_trio.client) if m.split(".")[-1] in PURE_CLIENT_STATE],
)
def test_the_client_state_classes_are_pure(module: str) -> None:
    assert _loaded(module) & {"trio", "socket", "sounddevice", "numpy", "opuslib"} == set()


def _full_names(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.splitlines()[-1]))
