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
import echomesh_trio.protocol
import echomesh_trio.voice

IO_AND_UI = ("trio", "socket", "sounddevice", "textual")
AUDIO_STACK = ("numpy", "opuslib")
SERVER_MUST_NOT_LOAD = ("numpy", "opuslib", "sounddevice", "soxr", "textual", "scipy")


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
