"""The report's per-class table, confusion matrix and calibration as Markdown, for model cards."""

from __future__ import annotations

from attnlens.report.build import Report


def _cell(text: str) -> str:
    """A label as a Markdown table cell: pipes and line breaks would break the table."""
    return text.replace("|", "\\|").replace("\n", " ")


def per_class_markdown(report: Report) -> str:
    metrics = report.metrics
    rows = [f"| {_cell(s.label)} | {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} | {s.support:,} |"
            for s in metrics.per_class]
    support = sum(s.support for s in metrics.per_class)
    for name, values in (("macro average", metrics.macro), ("micro average", metrics.micro)):
        rows.append(f"| *{name}* | {values['precision']:.4f} | {values['recall']:.4f} | {values['f1']:.4f} | {support:,} |")
    return "\n".join(["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|", *rows])


def confusion_markdown(report: Report) -> str:
    """Rows: the true class; columns: the predicted class."""
    labels = [_cell(label) for label in report.metrics.labels]
    header = "| true \\ predicted | " + " | ".join(labels) + " |"
    rule = "|---|" + "---:|" * len(labels)
    rows = [f"| **{label}** | " + " | ".join(f"{count:,}" for count in counts) + " |"
            for label, counts in zip(labels, report.metrics.confusion, strict=True)]
    return "\n".join([header, rule, *rows])


def calibration_markdown(report: Report) -> str:
    c = report.calibration
    rows = [f"| {when} | {s.ece:.4f} | {s.brier:.4f} | {s.nll:.4f} |" for when, s in
            (("raw (T = 1)", c.before), (f"temperature T = {c.temperature:.3f}", c.after))]
    return "\n".join(["| probabilities | ECE (15 bins) | Brier | NLL |", "|---|---:|---:|---:|", *rows])


def report_markdown(report: Report, heading_level: int = 2) -> str:
    """The three tables under headings, for a model card."""
    h = "#" * heading_level
    return (f"{h} Per-class metrics ({report.num_examples:,} examples of {report.data})\n\n{per_class_markdown(report)}\n\n"
            f"{h} Confusion matrix\n\n{confusion_markdown(report)}\n\n"
            f"{h} Calibration\n\nTemperature from: {report.calibration.temperature_source}.\n\n{calibration_markdown(report)}\n\n"
            "The whole audit (top words per class, worst errors, slices, faithfulness) is in `report.html` "
            "next to this card.\n")

