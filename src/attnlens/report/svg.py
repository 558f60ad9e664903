"""The report's two pictures as inline SVG: the confusion matrix and the reliability diagram.

They are written into the HTML page as plain `<svg>` elements (HTML5 needs no namespace URL, and
no picture fetches or runs anything). Class names come from the model's config, so every label and
tooltip is escaped like any other text from outside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from attnlens.calibration import ReliabilityBin

CELL = 64  # side of a confusion-matrix cell, px
LABEL_CHARS = 18  # longer class names are cut (the tooltip keeps the whole name)
CHAR_WIDTH = 7.5  # rough width of a 13px character, to size the label margins
RIGHT_RGB, WRONG_RGB = "37,99,235", "220,38,38"  # diagonal cells blue, errors red
BEFORE_RGB, AFTER_RGB = "120,134,156", "234,125,20"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def confusion_svg(labels: Sequence[str], confusion: Sequence[Sequence[int]], links: Mapping[tuple[int, int], str],
                  element_id: str = "confusion-matrix") -> str:
    """Rows are the true class, columns the predicted one; a cell's colour is its share of the row
    (so a rare class reads as clearly as a frequent one). `links`: (true, predicted) -> the id of
    the element listing that cell's examples; other cells link nowhere."""
    n = len(labels)
    label_width = CHAR_WIDTH * max((len(_short(label)) for label in labels), default=1) + 12
    left = 28 + label_width
    # Column labels are turned 45 degrees, so they need about 0.71 of their length upwards.
    top = 34 + 0.71 * label_width
    width, height = left + n * CELL + 8, top + n * CELL + 8
    parts = [
        f'<svg id="{_e(element_id)}" class="picture" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="confusion matrix">',
        f'<text x="{left + n * CELL / 2:.1f}" y="16" text-anchor="middle" class="axis">predicted class</text>',
        f'<text transform="translate(14 {top + n * CELL / 2:.1f}) rotate(-90)" text-anchor="middle" '
        'class="axis">true class</text>',
    ]
    for j, label in enumerate(labels):
        x = left + (j + 0.5) * CELL
        parts.append(f'<text transform="translate({x:.1f} {top - 6:.1f}) rotate(-45)">{_e(_short(label))}'
                     f"<title>{_e(label)}</title></text>")
    for i, (label, row) in enumerate(zip(labels, confusion, strict=True)):
        y = top + i * CELL
        parts.append(f'<text x="{left - 8:.1f}" y="{y + CELL / 2 + 4:.1f}" text-anchor="end">{_e(_short(label))}'
                     f"<title>{_e(label)}</title></text>")
        total = sum(row)
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            rgb = RIGHT_RGB if i == j else WRONG_RGB
            fill = f"rgba({rgb},{0.08 + 0.87 * share:.3f})" if count else "#ffffff"
            ink = "#ffffff" if share > 0.55 else "#1f2328"
            x = left + j * CELL
            tip = f"true {label}, predicted {labels[j]}: {count:,} ({share:.1%} of the row)"
            cell = (f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{CELL}" height="{CELL}" fill="{fill}" '
                    f'stroke="#c8ccd1"><title>{_e(tip)}</title></rect>'
                    f'<text x="{x + CELL / 2:.1f}" y="{y + CELL / 2 + 5:.1f}" text-anchor="middle" '
                    f'fill="{ink}" class="count">{count:,}</text>')
            target = links.get((i, j))
            parts.append(f'<a href="#{_e(target)}">{cell}</a>' if target else cell)
    parts.append("</svg>")
    return "".join(parts)


def reliability_svg(before: Sequence[ReliabilityBin], after: Sequence[ReliabilityBin],
                    names: tuple[str, str] = ("raw (T = 1)", "temperature-scaled"),
                    element_id: str = "reliability-diagram") -> str:
    """Accuracy per confidence bin, before and after scaling side by side in each bin, over the
    diagonal a perfectly calibrated model would follow. Empty bins draw nothing (an empty bin has
    no accuracy; a zero-height bar would claim one)."""
    left, right, top, bottom, plot_w, plot_h = 52, 16, 44, 44, 480, 300
    width, height = left + plot_w + right, top + plot_h + bottom

    def x(value: float) -> float:
        return left + value * plot_w

    def y(value: float) -> float:
        return top + (1 - value) * plot_h

    parts = [f'<svg id="{_e(element_id)}" class="picture" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="reliability diagram">']
    for k in range(6):
        tick = k / 5
        parts.append(f'<line x1="{x(0)}" x2="{x(1)}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eceef1"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">{tick:.1f}</text>'
                     f'<text x="{x(tick):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">{tick:.1f}</text>')
    for side, (bins, rgb, name) in enumerate(((before, BEFORE_RGB, names[0]), (after, AFTER_RGB, names[1]))):
        for b in bins:
            if not b.count:
                continue
            bar = (x(b.upper) - x(b.lower)) / 2
            # A bin of wrong answers still shows a sliver, so it does not look empty.
            h = max(b.accuracy * plot_h, 1.5)
            tip = (f"{name}, confidence ({b.lower:.3f}, {b.upper:.3f}]: {b.count:,} predictions, "
                   f"accuracy {b.accuracy:.4f}, mean confidence {b.confidence:.4f}")
            parts.append(f'<rect x="{x(b.lower) + side * bar + 0.5:.1f}" y="{y(0) - h:.1f}" width="{bar - 1:.1f}" '
                         f'height="{h:.1f}" fill="rgb({rgb})"><title>{_e(tip)}</title></rect>')
    parts += [
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#1f2328" stroke-dasharray="5 4"/>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(0)}" stroke="#1f2328"/>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(0)}" y2="{y(1)}" stroke="#1f2328"/>',
        f'<text x="{x(0.5)}" y="{height - 8}" text-anchor="middle" class="axis">confidence (bins)</text>',
        f'<text transform="translate(14 {y(0.5)}) rotate(-90)" text-anchor="middle" class="axis">accuracy</text>',
    ]
    legend = [(f"rgb({BEFORE_RGB})", names[0]), (f"rgb({AFTER_RGB})", names[1])]
    lx = left
    for colour, name in legend:
        parts.append(f'<rect x="{lx}" y="12" width="14" height="14" fill="{colour}"/>'
                     f'<text x="{lx + 20}" y="24">{_e(name)}</text>')
        lx += 34 + CHAR_WIDTH * len(name)
    parts.append(f'<line x1="{lx}" y1="19" x2="{lx + 22}" y2="19" stroke="#1f2328" stroke-dasharray="5 4"/>'
                 f'<text x="{lx + 28}" y="24">perfect calibration</text></svg>')
    return "".join(parts)
