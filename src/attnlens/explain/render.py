"""Showing an explanation: words coloured by importance, in a terminal (ANSI) or as HTML.

Both walk the original text and colour the word spans, copying everything between them
(spaces, line breaks, characters the tokenizer dropped, a truncated tail) verbatim, so what
the user reads is exactly what they wrote. Intensity is relative to the most important word.
"""

from __future__ import annotations

import html

from attnlens.explain.explanation import Explanation

# Most important word: a strong orange-red; unimportant words: no background.
_HOT = (230, 85, 13)


def _intensity(score: float, top: float) -> float:
    return 0.0 if top <= 0 else max(0.0, min(1.0, score / top))


def _blend(intensity: float) -> tuple[int, int, int]:
    """White -> _HOT, linearly; what background a word of this relative importance gets."""
    return tuple(round(255 + (hot - 255) * intensity) for hot in _HOT)  # type: ignore[return-value]


def _segments(explanation: Explanation) -> list[tuple[str, float | None, float]]:
    """(text piece, relative intensity or None for gaps, score) covering the whole text in order."""
    top = max((w.score for w in explanation.words), default=0.0)
    pieces: list[tuple[str, float | None, float]] = []
    cursor = 0
    for word in sorted(explanation.words, key=lambda w: w.start):
        if word.start < cursor:  # overlapping spans cannot happen with a fast tokenizer; stay safe
            continue
        if word.start > cursor:
            pieces.append((explanation.text[cursor : word.start], None, 0.0))
        pieces.append((explanation.text[word.start : word.end], _intensity(word.score, top), word.score))
        cursor = word.end
    if cursor < len(explanation.text):
        pieces.append((explanation.text[cursor:], None, 0.0))
    return pieces


def _summary(explanation: Explanation) -> str:
    probability = explanation.probabilities.get(explanation.label, 0.0)
    return f"{explanation.label} ({probability:.1%})"


def to_ansi(explanation: Explanation, color: bool = True) -> str:
    """The prediction line and the text with 24-bit background colours (plain text if not `color`)."""
    lines = [f"prediction: {_summary(explanation)}  method: {explanation.method}  target: {explanation.target}"]
    if explanation.truncated:
        lines.append("(text truncated at the model's maximum length; the rest was not read)")
    if not color:
        ranked = sorted(explanation.words, key=lambda w: (-w.score, w.start))[:10]
        lines.append(explanation.text)
        lines.append("top words: " + ", ".join(f"{w.word} {w.score:.3f}" for w in ranked))
        return "\n".join(lines)
    out = []
    for piece, intensity, _ in _segments(explanation):
        if intensity is None:
            out.append(piece)
        else:
            r, g, b = _blend(intensity)
            out.append(f"\x1b[38;2;0;0;0m\x1b[48;2;{r};{g};{b}m{piece}\x1b[0m")
    lines.append("".join(out))
    return "\n".join(lines)


def to_html(explanation: Explanation, full_page: bool = False) -> str:
    """A self-contained HTML fragment (inline styles, no scripts, every piece of text escaped).

    Each word is a `<span>` with its score in `title` and `data-score`; with `full_page` the
    fragment is wrapped in a minimal standalone document.
    """
    spans = []
    for piece, intensity, score in _segments(explanation):
        escaped = html.escape(piece).replace("\n", "<br>")
        if intensity is None:
            spans.append(escaped)
            continue
        r, g, b = _blend(intensity)
        spans.append(
            f'<span class="attnlens-word" style="background-color:rgb({r},{g},{b});border-radius:3px;'
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
        f'<p style="margin:0">{"".join(spans)}</p>{truncated}</div>'
    )
    if not full_page:
        return fragment
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>attnlens: {html.escape(explanation.method)} explanation</title></head>"
        f'<body style="max-width:50em;margin:2em auto">{fragment}</body></html>\n'
    )
