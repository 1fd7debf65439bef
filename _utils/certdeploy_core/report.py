"""Render a certdeploy rollout job record as a self-contained HTML report or a plain-text table.

The HTML has inline CSS and an inline SVG Gantt chart: no scripts, no external resources, so
it can be mailed or archived as one file. Every string taken from the job record is escaped.
Only fields of the job record schema are shown (fingerprints, dates, ids, timings), never key
material. The parts: ``report_model`` (reading the record), ``report_svg`` (the timeline),
``report_html`` and ``report_text`` (the two views).
"""

from __future__ import annotations

from . import files as certdeploy_files
from .report_html import render_html
from .report_svg import gantt_svg
from .report_text import render_text

__all__ = ["render_html", "render_text", "write_report", "gantt_svg"]


def write_report(job: dict, path: str) -> str:
    """Write the HTML report to ``path`` atomically (temp file + ``os.replace``), mode 0644.

    Returns ``path``. On any failure the temp file is removed and ``path`` is left untouched.
    """
    certdeploy_files.atomic_write(path, render_html(job).encode("utf-8"), mode=0o644, always=True)
    return path
