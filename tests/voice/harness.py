"""A sans-socket rig: a VoiceRelay whose sendto collects datagrams, and client sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from echomesh_trio.media import FRAME_SAMPLES
from echomesh_trio.protocol import events as ev
from echomesh_trio.voice.client import VoiceFrame, VoiceSession
from echomesh_trio.voice.relay import VoiceRelay


@dataclass
class Rig:
    relay: VoiceRelay
    sent: list[tuple[bytes, Any]] = field(default_factory=list)
    sessions: dict[int, VoiceSession] = field(default_factory=dict)
    addrs: dict[int, tuple[str, int]] = field(default_factory=dict)
    credentials: dict[int, ev.VoiceSetupInfo] = field(default_factory=dict)
    now_ns: int = 1_000_000_000
    _seq: dict[int, int] = field(default_factory=dict)

    def join(self, user_id: int, room: str | None) -> int:
        creds = self.relay.register()
        sid = creds.source_id
        self.credentials[sid] = creds
        self.sessions[sid] = VoiceSession.from_setup(creds)
        self.addrs[sid] = ("127.0.0.1", 20000 + len(self.addrs))
        self.deliver(sid, self.sessions[sid].hello(self.now_ns))
        self.relay.set_active_room(sid, room)
        self.sent.clear()
        return sid

    def deliver(self, sid: int, datagram: bytes) -> None:
        self.now_ns += 1_000_000
        self.relay.receive_datagram(datagram, self.addrs[sid], self.now_ns)

    def speak(self, sid: int, frame: bytes = b"opus") -> bytes:
        seq = self._seq[sid] = self._seq.get(sid, 0) + 1
        dg = self.sessions[sid].voice(frame, sequence=seq, timestamp=seq * FRAME_SAMPLES)
        self.deliver(sid, dg)
        return dg

    def heard(self) -> dict[int, list[VoiceFrame]]:
        """Open everything sent so far with the receivers' sessions, by receiver."""
        by_addr = {a: sid for sid, a in self.addrs.items()}
        out: dict[int, list[VoiceFrame]] = {}
        for data, addr in self.sent:
            sid = by_addr[addr]
            ev = self.sessions[sid].receive_untrusted(data, self.now_ns)
            assert isinstance(ev, VoiceFrame)
            out.setdefault(sid, []).append(ev)
        self.sent.clear()
        return out


def make_rig(**kwargs: Any) -> Rig:
    sent: list[tuple[bytes, Any]] = []
    relay = VoiceRelay(**kwargs)
    relay.attach(lambda d, a: sent.append((d, a)))
    return Rig(relay, sent)
