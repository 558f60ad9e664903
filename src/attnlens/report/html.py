"""`render_html(report)`: the audit as one self-contained HTML page.

Everything is inline (CSS, the SVG pictures of attnlens.report.svg) and nothing is fetched or run,
so the file can be mailed, archived or opened offline. Every string that comes from the data or
the model (texts, words, labels, names) is escaped; highlighted texts are cut at the explanation's
character offsets in the original text and each piece is escaped on its own, so a span can never
split an escape sequence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from attnlens.report.deletion import DeletionCheck
from attnlens.report.slices import Slice
from attnlens.report.svg import confusion_svg, reliability_svg
from attnlens.report.words import ClassWords, WordStat

EXCERPT_CHARS = 60  # characters quoted on each side of a word in the word tables
POSITIVE_RGB, NEGATIVE_RGB = "255,140,0", "59,130,246"  # evidence for / against the predicted class
# The cells' example lists come last: they are long, and the matrix links to them. The calibration
# section's id is not "calibration": that is its table's.
SECTIONS = [("metrics", "Metrics per class"), ("calibration-section", "Calibration"),
            ("words", "What drives each class"), ("errors", "Worst errors"), ("slices", "Slices"), ("faithfulness", "Faithfulness"),
            ("cells", "Examples per confusion-matrix cell")]

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       max-width: 1120px; margin: 0 auto; padding: 16px 24px 48px; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 12px; } h2 { font-size: 18px; border-bottom: 1px solid #d8dee4;
padding-bottom: 4px; margin-top: 36px; } h3 { font-size: 15px; margin: 22px 0 8px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.meta dt { color: #59636e; } dl.meta dd { margin: 0; }
nav ol { columns: 2; margin: 12px 0 0; padding-left: 20px; }
table { border-collapse: collapse; margin: 6px 0 12px; } caption { text-align: left; color: #59636e; }
th, td { border-bottom: 1px solid #e4e7ea; padding: 3px 10px; vertical-align: top; text-align: left; }
th { background: #f5f6f8; } td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
tr.average td { font-style: italic; background: #fafbfc; }
svg.picture { max-width: 100%; height: auto; font-size: 13px; fill: #1f2328; }
svg .axis { font-weight: 600; } svg .tick { font-size: 11px; fill: #59636e; } svg .count { font-weight: 600; }
svg a rect:hover { stroke: #1f2328; stroke-width: 2; }
figure { margin: 8px 0 16px; } figcaption { color: #59636e; max-width: 640px; }
.note { color: #59636e; } .warn { background: #fff5e0; border-left: 3px solid #e8a317; padding: 6px 10px; }
.text { max-height: 9em; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.example { border: 1px solid #e4e7ea; border-radius: 4px; padding: 6px 10px; margin: 8px 0; }
.example .about { color: #59636e; font-size: 13px; margin-bottom: 4px; }
mark { color: inherit; background: transparent; border-radius: 2px; } td mark { background: #ffe2b8; }
.cell-examples { margin-bottom: 18px; }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _rate(value: float) -> str:
    return f"{value:.4f}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], align: str, *, table_id: str = "",
           caption: str = "", row_classes: Sequence[str] = ()) -> str:
    """`head` is plain text; `rows` hold ready HTML; `align` has one "l"/"r" per column."""
    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(f'<{tag} class="{a}">{v}</{tag}>' for a, v in zip(align, values, strict=True))

    body = [f'<tr class="{row_classes[i] if i < len(row_classes) else ""}">{cells("td", row)}</tr>'
            for i, row in enumerate(rows)]
    attributes = f' id="{_e(table_id)}"' if table_id else ""
    return (f"<table{attributes}>{f'<caption>{caption}</caption>' if caption else ''}"
            f"<thead><tr>{cells('th', [_e(h) for h in head])}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def highlight(text: str, words: Sequence[Sequence[float]]) -> str:
    """`text` with each (start, end, score) character span shaded by |score| / the largest |score|
    (orange: evidence for the prediction, blue: against). A span overlapping the one before keeps
    only its part after it, so no character is shown twice."""
    top = max((abs(w[2]) for w in words), default=0.0)
    out, at = [], 0
    for start, end, score in sorted((int(s), int(e), float(v)) for s, e, v in words):
        start, end = max(start, at), min(end, len(text))
        if end <= start:
            continue
        alpha = abs(score) / top if top > 0 else 0.0
        rgb = POSITIVE_RGB if score >= 0 else NEGATIVE_RGB
        out.append(_e(text[at:start]))
        out.append(f'<mark style="background: rgba({rgb},{alpha:.3f})" title="score {score:.4f}">'
                   f"{_e(text[start:end])}</mark>")
        at = end
    out.append(_e(text[at:]))
    return "".join(out)


def excerpt(text: str, word: str) -> str:
    """The text around the first occurrence of `word` (as a whole word if it occurs as one), marked."""
    found = (re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE)
             or re.search(re.escape(word), text, re.IGNORECASE))
    if found is None:
        return _e(text[: 2 * EXCERPT_CHARS]) + ("…" if len(text) > 2 * EXCERPT_CHARS else "")
    start, end = found.span()
    a, b = max(0, start - EXCERPT_CHARS), min(len(text), end + EXCERPT_CHARS)
    return (("…" if a else "") + _e(text[a:start]) + f"<mark>{_e(text[start:end])}</mark>" + _e(text[end:b])
            + ("…" if b < len(text) else ""))


def _header(report: Any) -> str:
    timings = ", ".join(f"{_e(name.replace('_', ' '))} {seconds:,.2f} s" for name, seconds in report.seconds.items())
    about = [("model", _e(report.model or "(unnamed)")), ("data", _e(report.data or "(unnamed)")),
             ("examples", f"{report.num_examples:,}"), ("explanation method", _e(report.method)),
             ("long texts", _e(report.long_text)), ("max length", f"{report.max_length:,} tokens"),
             ("time per pass", timings or "not recorded")]
    toc = "".join(f'<li><a href="#{key}">{_e(title)}</a></li>' for key, title in SECTIONS)
    return (f"<header><h1>Audit of {_e(report.model or 'a classifier')}</h1><dl class=\"meta\">"
            + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in about)
            + f"</dl><nav><ol>{toc}</ol></nav></header>")


def _metrics(report: Any, links: dict[tuple[int, int], str]) -> str:
    m = report.metrics
    rows = [[_e(s.label), _rate(s.precision), _rate(s.recall), _rate(s.f1), f"{s.support:,}"] for s in m.per_class]
    support = sum(s.support for s in m.per_class)
    rows += [[f"{name} average", _rate(v["precision"]), _rate(v["recall"]), _rate(v["f1"]), f"{support:,}"]
             for name, v in (("macro", m.macro), ("micro", m.micro))]
    table = _table(["class", "precision", "recall", "F1", "support"], rows, "lrrrr", table_id="per-class",
                   row_classes=["class"] * len(m.per_class) + ["average", "average"])
    picture = confusion_svg(report.labels, m.confusion, links)
    return (f'<section id="metrics"><h2>Metrics per class</h2>{table}<p>Accuracy: <strong>{_rate(m.accuracy)}</strong> '
            f"on {report.num_examples:,} examples.</p><figure>{picture}<figcaption>Confusion matrix: rows are the "
            "true class, columns the predicted one; a cell's shade is its share of the row (blue: right, red: "
            "wrong). Click a cell for its most confident examples.</figcaption></figure></section>")


def _cells(report: Any, links: dict[tuple[int, int], str]) -> str:
    parts = ['<section id="cells"><h2>Examples per confusion-matrix cell</h2><p class="note">The most confident '
             "examples of each non-empty cell.</p>"]
    for (true, predicted), anchor in sorted(links.items()):
        examples = report.cell_examples[f"{true},{predicted}"]
        count = report.metrics.confusion[true][predicted]
        rows = [[f"{e.index:,}", _rate(e.confidence), f'<div class="text">{_e(e.text)}</div>'] for e in examples]
        parts.append(f'<div class="cell-examples" id="{anchor}"><h3>True {_e(report.labels[true])}, predicted '
                     f"{_e(report.labels[predicted])}: {count:,} examples, {len(examples):,} shown</h3>"
                     + _table(["row", "confidence", "text"], rows, "rrl")
                     + '<a class="note" href="#confusion-matrix">back to the matrix</a></div>')
    return "".join(parts) + "</section>"


def _calibration(report: Any) -> str:
    c = report.calibration
    after = f"T = {c.temperature:.3f}"
    rows = [[name, _rate(getattr(c.before, key)), _rate(getattr(c.after, key))]
            for name, key in (("ECE (15 bins)", "ece"), ("Brier", "brier"), ("NLL", "nll"),
                              ("accuracy", "accuracy"), ("mean confidence", "mean_confidence"))]
    table = _table(["measure", "raw (T = 1)", f"temperature-scaled ({after})"], rows, "lrr", table_id="calibration",
                   caption="Lower ECE, Brier and NLL are better; accuracy does not change with T.")
    source = f"<p>Temperature T = {c.temperature:.4f}, from {_e(c.temperature_source)}.</p>"
    if c.temperature_source == "fit on this data":
        source += ('<p class="warn">The model has no stored temperature, so T was fitted on these texts and scored on '
                   "the same texts: the scaled numbers are optimistic. Fit it on held-out labelled data with "
                   "<code>attnlens calibrate</code> for an honest measure.</p>")
    picture = reliability_svg(c.before.bins, c.after.bins, ("raw (T = 1)", after))
    return (f'<section id="calibration-section"><h2>Calibration</h2>{table}{source}<figure>{picture}<figcaption>Reliability '
            "diagram: the accuracy of the predictions in each confidence bin; a calibrated model's bars reach the "
            "dashed diagonal. Empty bins are left blank.</figcaption></figure></section>")


def _word_table(stats: Sequence[WordStat], caption: str, report: Any) -> str:
    def example(stat: WordStat) -> str:
        text = report.word_examples.get(stat.example)
        return excerpt(text, stat.word) if text is not None else f"text {stat.example:,}"

    rows = [[_e(s.word), _rate(s.total), _rate(s.mean), f"{s.count:,}", f"{s.texts:,}", example(s)] for s in stats]
    return _table(["word", "total", "mean", "count", "texts", "example"], rows, "lrrrrl", caption=_e(caption))


def _word_groups(groups: Sequence[ClassWords], report: Any, heading: str, none: str) -> str:
    parts = []
    for group in groups:
        parts.append(f"<h4>{heading} {_e(group.label)} ({group.texts:,} texts)</h4>")
        if not group.by_total:
            parts.append(f'<p class="note">{none}</p>')
            continue
        parts.append(_word_table(group.by_total, "by total attribution (what it relies on most overall)", report))
        parts.append(_word_table(group.by_mean, "by mean attribution (what weighs most when present)", report)
                     if group.by_mean else '<p class="note">No word occurs often enough to rank by mean.</p>')
    return "".join(parts)


def _deletion(checks: Sequence[DeletionCheck]) -> str:
    if not checks:
        return '<p class="note">The deletion check was skipped.</p>'
    rows = [[_e(d.label), _e(", ".join(d.words)), f"{d.texts:,}", f"{d.words_deleted:.2f}", _rate(d.top_drop),
             _rate(d.random_drop), _rate(d.top_flip_rate), _rate(d.random_flip_rate)] for d in checks]
    table = _table(["class", "words deleted", "texts", "mean words deleted", "p drop: top", "p drop: random",
                    "flip rate: top", "flip rate: random"], rows, "llrrrrrr")
    verdicts = []
    for d in checks:
        if not d.texts:
            verdicts.append(f"<li>{_e(d.label)}: no text predicted as it contains its top words.</li>")
            continue
        yes = d.top_drop > d.random_drop
        verdicts.append(f"<li>{_e(d.label)}: top words move the model more than random words: "
                        f"<strong>{'yes' if yes else 'no'}</strong> (p drops by {_rate(d.top_drop)} vs "
                        f"{_rate(d.random_drop)}).</li>")
    return table + f"<ul>{''.join(verdicts)}</ul>"


def _words(report: Any) -> str:
    drives = _word_groups(report.words, report, "Predicted as", "No text was predicted as this class.")
    misleads = _word_groups(report.error_words, report, "Wrongly predicted as", "No error predicted as this class.")
    return ('<section id="words"><h2>What drives each class</h2><p class="note">Word-level explanation scores '
            f"({_e(report.method)}) summed and averaged over the texts predicted as each class.</p>"
            f'<h3 id="class-words">Top words per predicted class</h3>{drives}'
            '<h3 id="error-words">What misleads it</h3><p class="note">The same over the wrongly predicted texts '
            f"only.</p>{misleads}"
            '<h3 id="deletion">Deletion check</h3><p class="note">Each class\'s top words deleted from the texts '
            "predicted as it, against as many random words deleted from the same texts.</p>"
            + _deletion(report.deletion) + "</section>")


def _example(e: Any) -> str:
    about = (f"row {e.index:,} · true <strong>{_e(e.label)}</strong> · predicted <strong>{_e(e.predicted)}</strong> · "
             f"confidence {_rate(e.confidence)} · {e.num_tokens:,} tokens{' (truncated)' if e.truncated else ''}")
    text = highlight(e.text, e.words)
    return f'<div class="example"><div class="about">{about}</div><div class="text">{text}</div></div>'


def _errors(report: Any) -> str:
    parts = ['<section id="errors"><h2>Worst errors</h2><p class="note">Words shaded by their share of the evidence '
             "for the predicted class (orange for, blue against).</p>"]
    for title, examples in (("Most confident errors", report.confident_errors),
                            ("Least confident right answers", report.unsure_right)):
        parts.append(f"<h3>{title}</h3>")
        parts += [_example(e) for e in examples] or ['<p class="note">None.</p>']
    return "".join(parts) + "</section>"


def _slice_table(rows: Sequence[Slice], caption: str) -> str:
    return _table(["slice", "examples", "accuracy", "macro F1", "mean confidence"],
                  [[_e(s.name), f"{s.examples:,}", _rate(s.accuracy), _rate(s.macro_f1), _rate(s.mean_confidence)]
                   for s in rows], "lrrrr", caption=caption)


def _slices(report: Any) -> str:
    return ('<section id="slices"><h2>Slices</h2>' + _slice_table(report.slices.get("length", []), "by tokens read")
            + _slice_table(report.slices.get("truncated", []), "truncated or read whole") + "</section>")


def _faithfulness(report: Any) -> str:
    f = report.faithfulness
    if f is None:
        return ('<section id="faithfulness"><h2>Faithfulness</h2><p class="note">Skipped (no sample was scored).'
                "</p></section>")
    rows = [["comprehensiveness", "higher", _rate(f.comprehensiveness), _rate(f.random_comprehensiveness),
             "yes" if f.comprehensiveness > f.random_comprehensiveness else "no"],
            ["sufficiency", "lower", _rate(f.sufficiency), _rate(f.random_sufficiency),
             "yes" if f.sufficiency < f.random_sufficiency else "no"]]
    table = _table(["ERASER measure", "better when", _e(f.method), "random ranking", "beats random"], rows, "llrrl")
    return (f'<section id="faithfulness"><h2>Faithfulness</h2>{table}<p>On {f.examples:,} examples. Cost per '
            f"example of the explanation pass: {f.explanation_ms_per_example:,.1f} ms (every pass's time is at "
            "the top of the page).</p></section>")


def render_html(report: Any) -> str:
    """The page of an `attnlens.report.build.Report` (typed loosely: that module imports this one,
    and the import graph must stay acyclic)."""
    links = {(t, p): f"cell-{t}-{p}" for t, row in enumerate(report.metrics.confusion) for p, count in enumerate(row)
             if count and report.cell_examples.get(f"{t},{p}")}
    body = "".join([_header(report), _metrics(report, links), _calibration(report), _words(report),
                    _errors(report), _slices(report), _faithfulness(report), _cells(report, links)])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>attnlens report: {_e(report.model or 'classifier')}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")
