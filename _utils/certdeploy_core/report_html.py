"""The report as one self-contained HTML page: inline CSS and SVG, no scripts, every string
from the job record escaped."""

from __future__ import annotations

import json

from .report_model import (
    _ARROW,
    _DASH,
    _HTML_GANTT_WIDTH,
    _RING_COLORS,
    _TIMING_ORDER,
    _badge,
    _deployed_count,
    _dict,
    _esc,
    _failed_nodes,
    _float,
    _fmt_seconds,
    _iso,
    _list,
    _metric,
    _node,
    _node_order,
    _norm_fp,
    _short_fp,
    _wall_time,
)
from .report_svg import (
    gantt_svg,
)

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
