"""Voice, pure: the sealed UDP datagram format, the relay (SFU) and the client's session.

Nothing here does I/O or imports Trio; import the modules themselves:

- `packet`: the datagram layout, `parse_untrusted_header` / `parse_untrusted`, `DropReason`
- `seal`: keys, nonces, `Sealer` / `Opener`, `DEFAULT_CIPHER`
- `replay`: `ReplayWindow`
- `relay`: `VoiceRelay`, the relay's state and hot path
- `client`: the client's `VoiceSession` and `TransportSelector`

The relay's UDP socket loop and its control-plane adapter are server code:
`echomesh_trio.server.voice_udp` and `echomesh_trio.server.voice_control`.
"""
