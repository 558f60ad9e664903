"""Where the windows of a text longer than the model's window go (`long_text="chunk"`).

One rule for predictions (attnlens.predict) and explanations (attnlens.explain.long_text), so a
long text's explanation reads exactly the windows its prediction averaged.
"""

from __future__ import annotations

from attnlens.errors import InputError

LONG_TEXT_MODES: tuple[str, ...] = ("truncate", "chunk")


def default_overlap(body: int) -> int:
    """A quarter of the window: every token but the first/last few gets context on both sides in
    some window, for a third more windows than disjoint ones (steps of 3/4)."""
    return body // 4


def check_overlap(overlap: int, body: int) -> int:
    if not 0 <= overlap < body:
        raise InputError(f"chunk_overlap={overlap} must be in [0, {body}) for windows of {body} tokens")
    return overlap


def window_starts(num_tokens: int, body: int, overlap: int) -> list[int]:
    """First token of each window of `body` tokens over a text of `num_tokens` (specials not
    counted), `overlap` tokens shared by neighbours. A text that fits has one window at 0. The
    last window ends exactly at the text's end, so no token is read by fewer windows than its
    neighbours for want of room."""
    if num_tokens <= body:
        return [0]
    step = body - overlap
    starts = range(0, num_tokens - body + step, step)
    return sorted({min(start, num_tokens - body) for start in starts})


def check_long_text(long_text: str) -> None:
    if long_text not in LONG_TEXT_MODES:
        raise InputError(f"long_text={long_text!r} is not one of {', '.join(LONG_TEXT_MODES)}")
