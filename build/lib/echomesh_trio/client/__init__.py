"""Client-side building blocks: the control connection (the TUI's client core builds on it)."""
