"""An explanation request's mode: its method and long-text mode as one string.

The batchers group texts by one mode string (texts of one model call share it), and the lanes
learn a speed per mode: a chunked explanation reads every window of a text, so its speed per
token pass differs from the first-window one's.
"""

from __future__ import annotations

CHUNKED = "+chunk"


def explanation_mode(method: str, long_text: str) -> str:
    return method + CHUNKED if long_text == "chunk" else method


def split_mode(mode: str) -> tuple[str, str]:
    """(method, long_text) of a mode string."""
    if mode.endswith(CHUNKED):
        return mode[: -len(CHUNKED)], "chunk"
    return mode, "truncate"
