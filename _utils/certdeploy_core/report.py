"""Render a certdeploy rollout job record as a self-contained HTML report or a plain-text table.

The HTML has inline CSS and an inline SVG Gantt chart: no scripts, no external resources, so
it can be mailed or archived as one file. Every string taken from the job record is escaped
with :func:`html.escape`. Only fields of the job record schema are shown (fingerprints,
dates, ids, timings), never key material.

Pure functions; stdlib only; no Salt dunders. Missing optional keys never raise.
"""

from __future__ import annotations

import datetime
import html
import json

from . import files as certdeploy_files

__all__ = ["render_html", "render_text", "write_report", "gantt_svg"]

_DASH = "\u2014"
_ARROW = "\u2192"

# Fixed colors for the step names certdeploy emits, so reports compare at a glance.
_STEP_COLORS = {
    "validate": "#9c755f",
    "backup": "#8c8c8c",
    "deploy": "#4e79a7",
    "install": "#f28e2b",
    "configure": "#edc948",
    "drain": "#ff9da7",
    "stop": "#d37295",
    "start": "#86bcb6",
    "reloadssl": "#499894",
    "activate": "#e15759",
    "verify": "#76b7b2",
    "cql_and_un": "#a0cbe8",
    "health_gate": "#59a14f",
    "rollback": "#b07aa1",
}
# Colors for any other step name, handed out in order of first appearance.
_FALLBACK_COLORS = (
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
)
_STATUS_COLORS = {
    "planned": "#6b7280",
    "pending": "#6b7280",
    "skipped": "#9ca3af",
    "running": "#2563eb",
    "succeeded": "#15803d",
    "deployed": "#15803d",
    "halted": "#c2410c",
    "rolled_back": "#b45309",
    "failed": "#b91c1c",
    "rollback_failed": "#7f1d1d",
}
_RING_COLORS = {"UN": "#15803d"}
_TIMING_ORDER = ("validate", "backup", "install", "configure", "activate", "verify")
_HTML_GANTT_WIDTH = 1080  # fills a ~1200 px window; the SVG scales down in narrower ones

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#111827;
background:#f9fafb;font-size:14px;line-height:1.4}
h1{font-size:20px;margin:0 0 8px;word-break:break-all}
h2{font-size:16px;margin:0 0 10px}
section,header{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px;
margin-bottom:16px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600;white-space:nowrap}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:12px 0 0}
dl.meta dt{color:#6b7280}
dl.meta dd{margin:0}
.chip{display:inline-block;background:#f3f4f6;border:1px solid #e5e7eb;border-radius:4px;
padding:0 6px;margin:0 4px 2px 0;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.muted{color:#6b7280}
.label{color:#6b7280;font-size:11px}
.alert{background:#fef2f2;border:1px solid #fecaca;color:#7f1d1d;border-radius:6px;
padding:8px 12px;margin-top:12px}
.alert p{margin:2px 0;word-break:break-word}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e5e7eb;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#374151}
#nodes td{font-size:13px;padding:6px 6px}
#nodes th{padding:6px 6px}
td.fp{width:240px;min-width:240px}
.scroll{overflow-x:auto}
.nowrap,.mono.nowrap{white-space:nowrap;word-break:normal}
tr.error-row td{background:#fef2f2;color:#7f1d1d;border-bottom:2px solid #fca5a5}
.ok{color:#15803d;font-weight:600}
.bad{color:#b91c1c;font-weight:600}
ul.plain{list-style:none;margin:0;padding:0}
ul.plain li{white-space:nowrap}
ul.plain li.wrap{white-space:normal}
table.mini{width:auto}
#nodes table.mini td{border:0;padding:0 0 0 8px;font-size:12px;white-space:nowrap;
text-align:right}
#nodes table.mini td:first-child{padding-left:0;text-align:left;color:#6b7280}
#nodes table.mini tr.total td{font-weight:600;color:#111827;border-top:1px solid #e5e7eb}
.gantt + p{margin:4px 0 0}
#load td,#load th{text-align:right}
#load td:first-child,#load th:first-child{text-align:left}
.gantt{overflow-x:auto}
.gantt svg{display:block;max-width:100%;height:auto;font-family:system-ui,sans-serif}
"""


# --- small value helpers -----------------------------------------------------------------------


def _esc(value) -> str:
    """Escape ``value`` for HTML text or attribute use; ``None`` becomes an em dash."""
    if value is None or value == "":
        return _DASH
    return html.escape(str(value), quote=True)


def _dict(value) -> dict:
    """``value`` when it is a dict, else an empty dict (tolerates missing or null keys)."""
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    """``value`` when it is a list or tuple, else an empty list."""
    return list(value) if isinstance(value, list | tuple) else []


def _float(value) -> float | None:
    """``value`` as a float, or ``None`` when it is missing or not numeric (bools excluded)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _iso(ts) -> str:
    """Epoch seconds as a UTC ISO-8601 string (``2026-11-26T20:30:00Z``); em dash if invalid."""
    value = _float(ts)
    if value is None:
        return _DASH
    try:
        moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return _DASH
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt_seconds(value) -> str:
    """A duration in seconds as ``2.15 s`` or ``3m 05.2s``; em dash when unknown."""
    seconds = _float(value)
    if seconds is None:
        return _DASH
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m {rest:04.1f}s"


def _norm_fp(value) -> str:
    """A fingerprint normalised for comparison: lower-case hex without colons or spaces."""
    if not isinstance(value, str):
        return ""
    return value.replace(":", "").replace(" ", "").lower()


def _short_fp(value, length: int = 16) -> str:
    """The first ``length`` hex digits of a fingerprint, or ``-`` when absent."""
    norm = _norm_fp(value)
    return norm[:length] if norm else "-"


def _badge(state) -> str:
    """A colored badge span for a job status or node state."""
    color = _STATUS_COLORS.get(str(state), "#6b7280")
    return f'<span class="badge" style="background:{color}">{_esc(state or "unknown")}</span>'


# --- job-level facts ---------------------------------------------------------------------------


def _node_order(job: dict) -> list[str]:
    """Node names in plan order, then any node present only in ``nodes`` (sorted)."""
    order = [str(name) for name in _list(_dict(job.get("plan")).get("order"))]
    seen = set(order)
    extra = sorted(str(name) for name in _dict(job.get("nodes")) if str(name) not in seen)
    return order + extra


def _node(job: dict, name: str) -> dict:
    """The node record for ``name`` (empty dict when the node has none yet)."""
    nodes = _dict(job.get("nodes"))
    return _dict(nodes.get(name))


def _steps(node: dict) -> list[dict]:
    """The node's step records that carry a usable numeric start."""
    return [
        step
        for step in _list(node.get("steps"))
        if isinstance(step, dict) and _float(step.get("start")) is not None
    ]


def _time_span(job: dict) -> tuple[float, float] | None:
    """(first step start, last step end) over all nodes; open steps end at ``updated``.

    ``None`` when no node has a step with a start time.
    """
    starts, ends = [], []
    updated = _float(job.get("updated"))
    for name in _node_order(job):
        for step in _steps(_node(job, name)):
            start = _float(step["start"])
            starts.append(start)
            end = _step_end(step, updated)
            ends.append(end)
    if not starts:
        return None
    return min(starts), max(ends)


def _step_end(step: dict, updated: float | None) -> float:
    """A step's end; for a step still open, the job's ``updated`` time (or its start)."""
    start = _float(step.get("start")) or 0.0
    end = _float(step.get("end"))
    if end is None:
        end = updated if updated is not None else start
    return max(end, start)


def _wall_time(job: dict) -> float | None:
    """Job wall time: ``updated - created``, else the step span, else ``None``."""
    created, updated = _float(job.get("created")), _float(job.get("updated"))
    if created is not None and updated is not None and updated >= created:
        return updated - created
    span = _time_span(job)
    return span[1] - span[0] if span else None


def _deployed_count(job: dict) -> tuple[int, int]:
    """(nodes in state ``deployed``, total nodes)."""
    order = _node_order(job)
    deployed = sum(1 for name in order if _node(job, name).get("state") == "deployed")
    return deployed, len(order)


def _step_colors(job: dict) -> dict[str, str]:
    """Step name -> color, for every step name used in the job, in first-appearance order."""
    colors: dict[str, str] = {}
    spare = [c for c in _FALLBACK_COLORS if c not in _STEP_COLORS.values()]
    for name in _node_order(job):
        for step in _steps(_node(job, name)):
            step_name = str(step.get("step") or "step")
            if step_name in colors:
                continue
            if step_name in _STEP_COLORS:
                colors[step_name] = _STEP_COLORS[step_name]
            else:
                colors[step_name] = spare[len(colors) % len(spare)] if spare else "#999999"
    return colors


def _failed_nodes(job: dict) -> list[tuple[str, str]]:
    """(node, error) for every node that carries an error message."""
    out = []
    for name in _node_order(job):
        error = _node(job, name).get("error")
        if error:
            out.append((name, str(error)))
    return out


# --- Gantt SVG ---------------------------------------------------------------------------------

_ROW_H = 28
_BAR_H = 16
_TOP = 10
_AXIS_H = 28
_LEGEND_ROW_H = 20
_CHAR_W = 7.2


def _nice_tick(span: float, max_ticks: int = 12) -> float:
    """A tick interval (seconds) from a 1-2-5 series giving at most ``max_ticks`` ticks."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if span / step <= max_ticks:
            return float(step)
    return float(max(1, round(span / max_ticks)))


def _tick_label(seconds: float) -> str:
    """An axis label: ``45s`` below a minute, ``2m``/``2m30s`` above."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"


def _label_width(names: list[str]) -> int:
    """Width reserved for node labels left of the chart (clamped to 60..200 px)."""
    longest = max((len(_truncate(n)) + 2 for n in names), default=4)
    return int(min(200, max(60, longest * _CHAR_W + 16)))


def _truncate(text: str, limit: int = 26) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _legend_layout(colors: dict[str, str], width: int, left: int) -> list[tuple[str, int, int]]:
    """(step name, x, row) for each legend entry, wrapping entries to fit ``width``."""
    x, row, out = left, 0, []
    for name in colors:
        item_w = int(14 + 6 + len(name) * _CHAR_W + 18)
        if x + item_w > width and x > left:
            x, row = left, row + 1
        out.append((name, x, row))
        x += item_w
    return out


def _gantt_rows(job, names, t0, scale, left, colors) -> list[str]:
    """SVG elements for the node rows: stripe, label and one rect per step."""
    parts = []
    updated = _float(job.get("updated"))
    canary = {str(n) for n in _list(_dict(job.get("plan")).get("canary"))}
    for index, name in enumerate(names):
        y = _TOP + index * _ROW_H
        if index % 2 == 0:
            parts.append(
                f'<rect x="0" y="{y}" width="100%" height="{_ROW_H}" fill="#f9fafb"></rect>'
            )
        label = _truncate(name) + (" *" if name in canary else "")
        parts.append(
            f'<text x="{left - 8}" y="{y + _ROW_H / 2 + 4:.1f}" text-anchor="end" '
            f'font-size="12" fill="#111827"><title>{_esc(name)}'
            f"{' (canary)' if name in canary else ''}</title>{_esc(label)}</text>"
        )
        for step in _steps(_node(job, name)):
            parts.append(_gantt_bar(name, step, y, t0, scale, left, colors, updated))
    return parts


def _gantt_bar(name, step, y, t0, scale, left, colors, updated) -> str:
    """One ``<rect class="step">`` for a step, with a tooltip of step name and duration."""
    step_name = str(step.get("step") or "step")
    start = _float(step["start"])
    end = _step_end(step, updated)
    is_open = _float(step.get("end")) is None
    x = left + (start - t0) * scale
    w = max(2.0, (end - start) * scale)
    tip = f"{name}: {step_name} {_fmt_seconds(end - start)}" + (" (running)" if is_open else "")
    extra = ' stroke="#111827" stroke-dasharray="3 2" fill-opacity="0.55"' if is_open else ""
    return (
        f'<rect class="step" data-node="{_esc(name)}" data-step="{_esc(step_name)}" '
        f'x="{x:.1f}" y="{y + (_ROW_H - _BAR_H) / 2:.1f}" width="{w:.1f}" height="{_BAR_H}" '
        f'rx="2" fill="{colors.get(step_name, "#999999")}"{extra}>'
        f"<title>{_esc(tip)}</title></rect>"
    )


def _gantt_axis(y, span, scale, left, plot_w) -> list[str]:
    """SVG elements for the time axis: baseline, ticks, labels and faint grid lines."""
    tick = _nice_tick(span)
    parts = [f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" stroke="#6b7280"></line>']
    count = int(span // tick) + 1
    for i in range(count):
        seconds = i * tick
        x = left + seconds * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{y}" stroke="#e5e7eb"></line>'
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#6b7280"></line>'
            f'<text x="{x:.1f}" y="{y + 18}" text-anchor="middle" font-size="11" '
            f'fill="#374151">{_esc(_tick_label(seconds))}</text>'
        )
    return parts


def _gantt_legend(colors, y, width, left) -> tuple[list[str], int]:
    """SVG elements for the step color legend, and the height it takes."""
    layout = _legend_layout(colors, width, left)
    parts = []
    for name, x, row in layout:
        ry = y + row * _LEGEND_ROW_H
        parts.append(
            f'<rect x="{x}" y="{ry}" width="14" height="12" rx="2" '
            f'fill="{colors[name]}"></rect>'
            f'<text x="{x + 20}" y="{ry + 10}" font-size="12" fill="#111827">{_esc(name)}</text>'
        )
    rows = (max(row for _, _, row in layout) + 1) if layout else 0
    return parts, rows * _LEGEND_ROW_H


def gantt_svg(job: dict, width: int = 900) -> str:
    """An inline SVG Gantt chart of the job: one row per node in plan order, one bar per step.

    Bars are placed by start/end relative to the first step start of the whole job; a step
    with no ``end`` (still running) extends to the job's ``updated`` time and is drawn dashed.
    Each bar is ``<rect class="step" data-node=.. data-step=..>`` with a ``<title>`` tooltip.
    """
    job = _dict(job)
    width = max(300, int(width))
    names = _node_order(job)
    span = _time_span(job)
    left = _label_width(names)
    right_pad = 24
    plot_w = width - left - right_pad
    colors = _step_colors(job)
    rows_h = max(1, len(names)) * _ROW_H
    axis_y = _TOP + rows_h
    if span is None:
        t0, duration = 0.0, 1.0
    else:
        t0 = span[0]
        raw = max(span[1] - span[0], 1.0)
        tick = _nice_tick(raw)
        duration = -(-raw // tick) * tick  # round up so the axis ends on a labelled tick
    scale = plot_w / duration
    parts = _gantt_rows(job, names, t0, scale, left, colors)
    if span is None:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{_TOP + rows_h / 2 + 4:.1f}" '
            'text-anchor="middle" font-size="13" fill="#6b7280">no steps recorded yet</text>'
        )
    else:
        parts.extend(_gantt_axis(axis_y, duration, scale, left, plot_w))
    legend, legend_h = _gantt_legend(colors, axis_y + _AXIS_H + 6, width, left)
    parts.extend(legend)
    height = axis_y + _AXIS_H + 6 + legend_h + 8
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="rollout timeline">'
        + "".join(parts)
        + "</svg>"
    )


# --- HTML sections -----------------------------------------------------------------------------


def _params_html(params: dict) -> str:
    """Job parameters as ``key=value`` chips (values JSON-encoded, so booleans read clearly)."""
    if not params:
        return _DASH
    chips = []
    for key in sorted(params, key=str):
        value = json.dumps(params[key], default=str)
        chips.append(f'<span class="chip">{_esc(key)}={_esc(value)}</span>')
    return "".join(chips)


def _plan_html(plan: dict) -> str:
    """The plan's batches (``[cass1] [cass2]``) and canary nodes."""
    batches = _list(plan.get("batches"))
    text = " ".join("[" + ", ".join(str(n) for n in _list(batch)) + "]" for batch in batches)
    canary = ", ".join(str(n) for n in _list(plan.get("canary")))
    out = f'<span class="mono">{_esc(text)}</span>'
    if canary:
        out += f' <span class="muted">canary: {_esc(canary)}</span>'
    return out


def _header_html(job: dict) -> str:
    """The report header: job id, status badge, cluster, kind, times, params and plan."""
    deployed, total = _deployed_count(job)
    rows = [
        ("Cluster", _esc(job.get("cluster"))),
        ("Kind", _esc(job.get("kind"))),
        ("Created", _esc(_iso(job.get("created")))),
        ("Updated", _esc(_iso(job.get("updated")))),
        ("Wall time", _esc(_fmt_seconds(_wall_time(job)))),
        ("Deployed", f"{deployed}/{total} nodes"),
        ("Params", _params_html(_dict(job.get("params")))),
        ("Plan", _plan_html(_dict(job.get("plan")))),
    ]
    meta = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    failures = _failed_nodes(job)
    alert = ""
    if failures:
        items = "".join(
            f"<p><strong>{_esc(name)}</strong>: {_esc(error)}</p>" for name, error in failures
        )
        alert = f'<div class="alert" id="errors">{items}</div>'
    return (
        f"<header><h1>{_esc(job.get('job_id'))} {_badge(job.get('status'))}</h1>"
        f'<dl class="meta">{meta}</dl>{alert}</header>'
    )


def _timeline_html(job: dict) -> str:
    """The timeline section wrapping the Gantt SVG."""
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        f'<div class="gantt">{gantt_svg(job, width=_HTML_GANTT_WIDTH)}</div>'
        '<p class="muted">Hover a bar for step name and duration; * marks canary nodes.</p>'
        "</section>"
    )


def _fingerprint_cell(node: dict) -> str:
    """Old and new fingerprints in full, monospace, wrapping anywhere (two lines of 32 hex)."""
    old, new = node.get("old_fingerprint"), node.get("new_fingerprint")
    return (
        f'<td class="fp"><div class="label">old</div><div class="mono">{_esc(old)}</div>'
        f'<div class="label">{_ARROW} new</div><div class="mono">{_esc(new)}</div></td>'
    )


def _date_html(value) -> str:
    """An ISO timestamp, escaped, that may wrap only between its date and time parts."""
    text = "" if value is None else str(value)
    date, sep, rest = text.partition("T")
    if not sep or not date:
        return f'<span class="nowrap">{_esc(value)}</span>'
    return f'<span class="nowrap">{_esc(date)}</span><wbr><span class="nowrap">T{_esc(rest)}</span>'


def _expiry_cell(node: dict) -> str:
    """Old and new certificate expiry dates."""
    return (
        f'<td><div class="label">old</div><div>{_date_html(node.get("old_not_after"))}</div>'
        f'<div class="label">new</div><div>{_date_html(node.get("not_after"))}</div></td>'
    )


def _timings_cell(node: dict) -> str:
    """Per-phase timings (seconds) in pipeline order, then any other keys, then the total."""
    timings = _dict(node.get("timings"))
    if not timings:
        return f'<td class="muted">{_DASH}</td>'
    keys = [k for k in _TIMING_ORDER if k in timings]
    keys += sorted(k for k in timings if k not in keys and k != "total")
    rows = [(k, timings[k], "") for k in keys]
    if "total" in timings:
        rows.append(("total", timings["total"], ' class="total"'))
    cells = "".join(
        f"<tr{cls}><td>{_esc(k)}</td><td>{_esc(_metric(v, '{:.2f}'))}</td></tr>"
        for k, v, cls in rows
    )
    return f'<td><table class="mini">{cells}</table></td>'


def _served_fp_html(label: str, served, node: dict) -> str:
    """One served fingerprint (short), marked as matching new, matching old, or differing."""
    if not served:
        return f'<li>{label} <span class="muted">{_DASH}</span></li>'
    norm = _norm_fp(served)
    if norm and norm == _norm_fp(node.get("new_fingerprint")):
        verdict = '<span class="ok">= new \u2713</span>'
    elif norm and norm == _norm_fp(node.get("old_fingerprint")):
        verdict = '<span class="bad">= old \u2717</span>'
    else:
        verdict = '<span class="bad">\u2260 new \u2717</span>'
    return (
        f'<li>{label} <span class="mono" title="{_esc(served)}">'
        f"{_esc(_short_fp(served, 8))}\u2026</span> {verdict}</li>"
    )


def _ring_html(ring: dict) -> str:
    """Ring states (``127.0.0.1 UN``), green when up/normal, red otherwise."""
    if not ring:
        return f'<li>ring <span class="muted">{_DASH}</span></li>'
    items = []
    for address in sorted(ring, key=str):
        state = str(ring[address])
        color = _RING_COLORS.get(state, "#b91c1c")
        items.append(
            f'<span class="chip">{_esc(address)} '
            f'<strong style="color:{color}">{_esc(state)}</strong></span>'
        )
    return f'<li class="wrap">ring {"".join(items)}</li>'


def _evidence_cell(node: dict) -> str:
    """Verification evidence: served client/internode fingerprints, CQL, ring states."""
    evidence = _dict(node.get("evidence"))
    if not evidence:
        return f'<td class="muted">{_DASH}</td>'
    cql = evidence.get("cql")
    if cql is None:
        cql_html = f'<span class="muted">{_DASH}</span>'
    else:
        cql_html = '<span class="ok">ok</span>' if cql else '<span class="bad">failed</span>'
    items = [
        _served_fp_html("client", evidence.get("client"), node),
        _served_fp_html("internode", evidence.get("internode"), node),
        f"<li>cql {cql_html}</li>",
        _ring_html(_dict(evidence.get("ring"))),
    ]
    return f'<td><ul class="plain">{"".join(items)}</ul></td>'


def _node_cell(name: str, node: dict, canary: set[str]) -> str:
    """Node name, address, dc/rack and a canary tag."""
    where = " / ".join(str(node[k]) for k in ("dc", "rack") if node.get(k))
    tag = ' <span class="chip">canary</span>' if name in canary else ""
    return (
        f"<td><strong>{_esc(name)}</strong>{tag}"
        f'<div class="mono muted nowrap">{_esc(node.get("address"))}</div>'
        f'<div class="muted">{_esc(where)}</div></td>'
    )


_NODE_COLUMNS = (
    "Node",
    "State",
    "Method",
    "Fingerprint old \u2192 new",
    "Expiry",
    "Backup",
    "Timings (s)",
    "Evidence",
)


def _node_row(job: dict, name: str, canary: set[str]) -> str:
    """A node's ``<tr data-node data-state>``, plus a highlighted error row when it has one."""
    node = _node(job, name)
    state = node.get("state") or "pending"
    row = (
        f'<tr data-node="{_esc(name)}" data-state="{_esc(state)}">'
        f"{_node_cell(name, node, canary)}<td>{_badge(state)}</td>"
        f"<td>{_esc(node.get('method'))}</td>{_fingerprint_cell(node)}{_expiry_cell(node)}"
        f'<td class="mono nowrap">{_esc(node.get("backup_id"))}</td>'
        f"{_timings_cell(node)}{_evidence_cell(node)}</tr>"
    )
    if node.get("error"):
        row += (
            f'<tr class="error-row"><td colspan="{len(_NODE_COLUMNS)}">'
            f"<strong>{_esc(name)} error:</strong> {_esc(node['error'])}</td></tr>"
        )
    return row


def _nodes_html(job: dict) -> str:
    """The per-node table section."""
    canary = {str(n) for n in _list(_dict(job.get("plan")).get("canary"))}
    head = "".join(f"<th>{_esc(c)}</th>" for c in _NODE_COLUMNS)
    rows = "".join(_node_row(job, name, canary) for name in _node_order(job))
    if not rows:
        rows = f'<tr><td colspan="{len(_NODE_COLUMNS)}" class="muted">no nodes</td></tr>'
    return (
        '<section id="nodes"><h2>Nodes</h2>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _metric(value, fmt: str = "{:,.0f}") -> str:
    """A load metric formatted with ``fmt``, or an em dash when missing."""
    number = _float(value)
    return _DASH if number is None else fmt.format(number)


def _load_html(job: dict) -> str:
    """The load section (before/during stress numbers); empty string when there is no load."""
    load = _dict(job.get("load"))
    phases = [p for p in ("before", "during") if isinstance(load.get(p), dict)]
    phases += sorted(p for p in load if p not in phases and isinstance(load[p], dict))
    if not phases:
        return ""
    head = "".join(f"<th>{c}</th>" for c in ("Phase", "ops", "failed", "ops/s", "p50", "p99"))
    rows = []
    for phase in phases:
        data = load[phase]
        failed = _float(data.get("failed"))
        cls = ' class="bad"' if failed else ""
        rows.append(
            f"<tr><td>{_esc(phase)}</td><td>{_metric(data.get('ops'))}</td>"
            f"<td{cls}>{_metric(data.get('failed'))}</td>"
            f"<td>{_metric(data.get('ops_per_s'), '{:,.1f}')}</td>"
            f"<td>{_metric(data.get('p50_ms'), '{:.1f} ms')}</td>"
            f"<td>{_metric(data.get('p99_ms'), '{:.1f} ms')}</td></tr>"
        )
    return (
        '<section id="load"><h2>Load</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def render_html(job: dict) -> str:
    """A complete, self-contained HTML report for ``job`` (inline CSS and SVG, no scripts)."""
    job = _dict(job)
    title = f"certdeploy {job.get('kind') or 'job'} {job.get('job_id') or ''}".strip()
    body = _header_html(job) + _timeline_html(job) + _nodes_html(job) + _load_html(job)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


# --- plain text --------------------------------------------------------------------------------


def _text_cell(value) -> str:
    """A single-line table cell (newlines and tabs collapsed)."""
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())


def _text_load_line(phase: str, data: dict) -> str:
    """``load before: ops=1200 failed=0 ops/s=120.0 p50=2.1ms p99=9.8ms``."""
    parts = [
        f"ops={_metric(data.get('ops'), '{:.0f}')}",
        f"failed={_metric(data.get('failed'), '{:.0f}')}",
        f"ops/s={_metric(data.get('ops_per_s'), '{:.1f}')}",
        f"p50={_metric(data.get('p50_ms'), '{:.1f}ms')}",
        f"p99={_metric(data.get('p99_ms'), '{:.1f}ms')}",
    ]
    return f"load {phase}: " + " ".join(parts).replace(_DASH, "-")


def render_text(job: dict) -> str:
    """A fixed-width node table, a one-line summary, then load numbers when present.

    Columns: node | state | method | old fp (16 hex) -> new fp (16 hex) | total s | error.
    """
    job = _dict(job)
    header = ("node", "state", "method", "fingerprint old -> new", "total s", "error")
    rows = []
    for name in _node_order(job):
        node = _node(job, name)
        total = _float(_dict(node.get("timings")).get("total"))
        fps = (
            f"{_short_fp(node.get('old_fingerprint'))} -> {_short_fp(node.get('new_fingerprint'))}"
        )
        rows.append(
            (
                _text_cell(name),
                _text_cell(node.get("state") or "pending"),
                _text_cell(node.get("method")),
                fps,
                "-" if total is None else f"{total:.2f}",
                _text_cell(node.get("error")),
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells) -> str:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        padded[4] = cells[4].rjust(widths[4])
        return " | ".join([*padded, cells[-1]]).rstrip()

    out = [
        f"job {_text_cell(job.get('job_id'))}  cluster {_text_cell(job.get('cluster'))}  "
        f"kind {_text_cell(job.get('kind'))}",
        line(header),
        "-+-".join("-" * w for w in widths) + "-+-" + "-" * len(header[-1]),
    ]
    out.extend(line(r) for r in rows)
    deployed, total = _deployed_count(job)
    wall = _wall_time(job)
    out.append(
        f"status {_text_cell(job.get('status'))}  wall {'-' if wall is None else f'{wall:.1f}s'}"
        f"  deployed {deployed}/{total}"
    )
    load = _dict(job.get("load"))
    for phase in ("before", "during"):
        if isinstance(load.get(phase), dict):
            out.append(_text_load_line(phase, load[phase]))
    return "\n".join(out) + "\n"


# --- output ------------------------------------------------------------------------------------


def write_report(job: dict, path: str) -> str:
    """Write the HTML report to ``path`` atomically (temp file + ``os.replace``), mode 0644.

    Returns ``path``. On any failure the temp file is removed and ``path`` is left untouched.
    """
    certdeploy_files.atomic_write(path, render_html(job).encode("utf-8"), mode=0o644, always=True)
    return path
