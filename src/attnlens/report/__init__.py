"""Audit a classifier on labelled data: `build_report(...)` returns a `Report` (`to_html`,
`to_json`, `write`); `attnlens report` is the command over it."""

from attnlens.report.build import Report, build_report

__all__ = ["Report", "build_report"]
