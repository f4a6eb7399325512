"""The smallest complete voice client: join a room, say a tone for a few seconds, record
what you hear, print who speaks. ``echomesh-bot`` is the full version of this.

    .venv/bin/python examples/voice_bot.py --port 8888 --user alice --password secret \
        --room lobby --tone 440 --seconds 5 --record heard.wav

Against a plaintext server (``make serve ARGS=--plaintext``); drop ``plaintext=True`` below
for TLS (the certificate is then pinned on first contact in known_servers.toml).
"""

from __future__ import annotations

import argparse

import trio

from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client import events as ce
from echomesh_trio.client.core import ClientConfig, open_client
from echomesh_trio.devices import NullOutput, ToneInput, WavFileOutput


async def main(args: argparse.Namespace) -> None:
    output = WavFileOutput(args.record) if args.record else NullOutput()
    config = ClientConfig(
        "127.0.0.1", args.port, args.user, args.password, plaintext=True,
        rooms=[args.room],                        # joined, created if missing
        audio_input=ToneInput(args.tone),         # the "microphone"
        audio_output=output,                      # the "speaker"
        transmit_mode=GateMode.CONTINUOUS,        # or PUSH_TO_TALK with client.ptt(True)
        noise_suppression=False,                  # on by default, for real microphones
    )  # fmt: skip
    async with open_client(config) as client:
        await client.wait_connected()
        print(f"in {client.rooms} with {[m.username for m in client.members(args.room)]}")
        with trio.move_on_after(args.seconds):
            async for event in client.events():
                if isinstance(event, ce.TalkChanged):
                    print(f"{event.username} {'speaks' if event.speaking else 'stopped'}")
                elif isinstance(event, ce.ChatReceived):
                    print(f"{event.message.username}: {event.message.content}")
    output.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--tone", type=float, default=440.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--record")
    trio.run(main, parser.parse_args())
