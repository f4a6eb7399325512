"""Widgets by feature. Each is told what to show (a ``show`` method or attributes set by its
screen) and reports what the person did with a message from ``tui_client.messages``; none
touches the network or audio."""
