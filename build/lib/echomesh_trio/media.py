"""Media constants shared by the audio engine, the voice packet format and the relay.

Defined once here so that the sample clock in voice packet timestamps, the Opus frame
size and the playout tick can never disagree.
"""

SAMPLE_RATE = 48_000
"""Opus runs at 48 kHz; voice packet timestamps count samples of this clock."""

FRAME_MS = 20
"""One Opus frame, one voice packet, one playout tick."""

FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960
CHANNELS = 1
