"""The control-channel protocol: sans-IO framing, typed events, and the protobuf codec."""
