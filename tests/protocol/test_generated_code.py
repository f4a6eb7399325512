"""The committed generated module must be exactly what `make proto` produces from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_message_pb2_is_reproducible_from_the_schema(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(ROOT / "proto" / "message.proto"),
        ],
        check=True,
    )
    for name in ("message_pb2.py", "message_pb2.pyi"):
        committed = (ROOT / "echomesh_trio" / "protocol" / name).read_text()
        assert (tmp_path / name).read_text() == committed, f"{name} is stale: run `make proto`"


def test_the_fast_protobuf_backend_is_in_use() -> None:
    from google.protobuf.internal import api_implementation

    assert api_implementation.Type() == "upb"  # the pure-Python backend is ~20x slower
