"""EchoMesh: self-hosted, low-latency voice and text chat for the terminal."""

__version__ = "0.1.0"
