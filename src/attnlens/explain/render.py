"""Showing an explanation: words (or tokens, or sentences) coloured by importance, in a terminal
(ANSI) or as HTML.

Both walk the original text and colour the spans of the chosen level, copying everything between
them (spaces, line breaks, characters the tokenizer dropped, a truncated tail) verbatim, so what
the user reads is exactly what they wrote. Intensity is relative to the most important span.
"""

from __future__ import annotations

import html

from attnlens.errors import InputError
from attnlens.explain.explanation import Explanation

# Most important word: a strong orange-red; unimportant words: no background.
_HOT = (230, 85, 13)
LEVELS = ("word", "token", "sentence")


def spans(explanation: Explanation, level: str = "word") -> list[tuple[str, int, int, float]]:
    """(text, start, end, score) of every scored span at `level`; special tokens have none."""
    if level == "word":
        return [(w.word, w.start, w.end, w.score) for w in explanation.words]
    if level == "token":
        return [(t.token, t.start, t.end, t.score) for t in explanation.tokens if not t.special]
    if level == "sentence":
        return [(s.text, s.start, s.end, s.score) for s in explanation.sentences]
    raise InputError(f"level={level!r} is not one of {', '.join(LEVELS)}")


def _intensity(score: float, top: float) -> float:
    return 0.0 if top <= 0 else max(0.0, min(1.0, score / top))


def _blend(intensity: float) -> tuple[int, int, int]:
    """White -> _HOT, linearly; what background a word of this relative importance gets."""
    return tuple(round(255 + (hot - 255) * intensity) for hot in _HOT)  # type: ignore[return-value]


def _segments(explanation: Explanation, level: str) -> list[tuple[str, float | None, float]]:
    """(text piece, relative intensity or None for gaps, score) covering the whole text in order."""
    scored = sorted(spans(explanation, level), key=lambda span: span[1])
    top = max((score for *_, score in scored), default=0.0)
    pieces: list[tuple[str, float | None, float]] = []
    cursor = 0
    for _, start, end, score in scored:
        if start < cursor:  # overlapping spans cannot happen with a fast tokenizer; stay safe
            continue
        if start > cursor:
            pieces.append((explanation.text[cursor:start], None, 0.0))
        pieces.append((explanation.text[start:end], _intensity(score, top), score))
        cursor = end
    if cursor < len(explanation.text):
        pieces.append((explanation.text[cursor:], None, 0.0))
    return pieces


def _summary(explanation: Explanation) -> str:
    probability = explanation.probabilities.get(explanation.label, 0.0)
    return f"{explanation.label} ({probability:.1%})"


def to_ansi(explanation: Explanation, color: bool = True, level: str = "word") -> str:
    """The prediction line and the text with 24-bit background colours per `level` span (word,
    token or sentence); plain text and the top spans if not `color`."""
    lines = [f"prediction: {_summary(explanation)}  method: {explanation.method}  target: {explanation.target}"]
    if explanation.truncated:
        lines.append("(text truncated at the model's maximum length; the rest was not read)")
    if not color:
        ranked = sorted(spans(explanation, level), key=lambda span: (-span[3], span[1]))[:10]
        lines.append(explanation.text)
        quote = repr if level == "sentence" else str  # sentences hold commas and may hold line breaks
        lines.append(f"top {level}s: " + ", ".join(f"{quote(text)} {score:.3f}" for text, _, _, score in ranked))
        return "\n".join(lines)
    out = []
    for piece, intensity, _ in _segments(explanation, level):
        if intensity is None:
            out.append(piece)
        else:
            r, g, b = _blend(intensity)
            out.append(f"\x1b[38;2;0;0;0m\x1b[48;2;{r};{g};{b}m{piece}\x1b[0m")
    lines.append("".join(out))
    return "\n".join(lines)


def to_html(explanation: Explanation, full_page: bool = False, level: str = "word") -> str:
    """A self-contained HTML fragment (inline styles, no scripts, every piece of text escaped).

    Each word (token, sentence: `level`) is a `<span class="attnlens-{level}">` with its score in
    `title` and `data-score`; with `full_page` the fragment is wrapped in a minimal standalone document.
    """
    marked = []
    for piece, intensity, score in _segments(explanation, level):
        escaped = html.escape(piece).replace("\n", "<br>")
        if intensity is None:
            marked.append(escaped)
            continue
        r, g, b = _blend(intensity)
        marked.append(
            f'<span class="attnlens-{level}" style="background-color:rgb({r},{g},{b});border-radius:3px;'
            f'padding:0 1px" title="{score:.4f}" data-score="{score:.6f}">{escaped}</span>'
        )
    truncated = (
        '<p style="color:#666;font-size:0.9em">The text was truncated at the model\'s maximum length; '
        "the unhighlighted tail was not read.</p>"
        if explanation.truncated
        else ""
    )
    fragment = (
        '<div class="attnlens-explanation" style="font-family:sans-serif;line-height:1.8">'
        f'<p style="margin:0 0 0.5em 0"><strong>{html.escape(_summary(explanation))}</strong> '
        f'<span style="color:#666">method: {html.escape(explanation.method)}, '
        f"target class {explanation.target}</span></p>"
        f'<p style="margin:0">{"".join(marked)}</p>{truncated}</div>'
    )
    if not full_page:
        return fragment
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>attnlens: {html.escape(explanation.method)} explanation</title></head>"
        f'<body style="max-width:50em;margin:2em auto">{fragment}</body></html>\n'
    )
