"""Screens by purpose: connecting, the main chat-and-voice screen, and the modals."""
