"""The EchoMesh server: control plane over TCP/TLS, voice relay over UDP, SQLite store."""
