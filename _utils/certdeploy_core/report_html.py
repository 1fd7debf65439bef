"""The report as one self-contained HTML page: inline CSS and SVG, no scripts. Python builds
a view of plain values from the job record (``_view``); the Jinja2 template in
``templates.REPORT_HTML`` lays it out with autoescape on, so every string from the record is
escaped by the template engine, not by hand."""

from __future__ import annotations

import json

from . import templates
from .report_model import (
    _ARROW,
    _DASH,
    _HTML_GANTT_WIDTH,
    _RING_COLORS,
    _STATUS_COLORS,
    _TIMING_ORDER,
    _deployed_count,
    _dict,
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
from .report_svg import gantt_svg

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

NODE_COLUMNS = (
    "Node",
    "State",
    "Method",
    f"Fingerprint old {_ARROW} new",
    "Expiry",
    "Backup",
    "Timings (s)",
    "Evidence",
)


def _badge(state) -> dict:
    return {"text": state or "unknown", "color": _STATUS_COLORS.get(str(state), "#6b7280")}


def _date_parts(value) -> tuple[str, str] | None:
    """``("2026-11-26", "T20:30:00Z")`` so a date may wrap only between its parts."""
    text = "" if value is None else str(value)
    date, sep, rest = text.partition("T")
    return (date, f"T{rest}") if sep and date else None


def _served(label: str, served, node: dict) -> dict:
    norm = _norm_fp(served)
    if not served:
        verdict = None
    elif norm and norm == _norm_fp(node.get("new_fingerprint")):
        verdict = ("ok", "= new \u2713")
    elif norm and norm == _norm_fp(node.get("old_fingerprint")):
        verdict = ("bad", "= old \u2717")
    else:
        verdict = ("bad", "\u2260 new \u2717")
    short = f"{_short_fp(served, 8)}\u2026" if served else None
    return {"label": label, "full": served, "short": short, "verdict": verdict}


def _timings(node: dict) -> list[tuple[str, str, bool]]:
    """(step, seconds, is_total) in pipeline order, then other keys, then the total."""
    timings = _dict(node.get("timings"))
    keys = [k for k in _TIMING_ORDER if k in timings]
    keys += sorted(k for k in timings if k not in keys and k != "total")
    rows = [(k, _metric(timings[k], "{:.2f}"), False) for k in keys]
    if "total" in timings:
        rows.append(("total", _metric(timings["total"], "{:.2f}"), True))
    return rows


def _evidence(node: dict) -> dict | None:
    evidence = _dict(node.get("evidence"))
    if not evidence:
        return None
    ring = _dict(evidence.get("ring"))
    return {
        "served": [
            _served("client", evidence.get("client"), node),
            _served("internode", evidence.get("internode"), node),
        ],
        "cql": evidence.get("cql"),
        "ring": [
            (address, str(ring[address]), _RING_COLORS.get(str(ring[address]), "#b91c1c"))
            for address in sorted(ring, key=str)
        ],
    }


def _node_view(job: dict, name: str, canary: set[str]) -> dict:
    node = _node(job, name)
    return {
        "name": name,
        "state": node.get("state") or "pending",
        "badge": _badge(node.get("state") or "pending"),
        "canary": name in canary,
        "address": node.get("address"),
        "where": " / ".join(str(node[k]) for k in ("dc", "rack") if node.get(k)),
        "method": node.get("method"),
        "old": node.get("old_fingerprint"),
        "new": node.get("new_fingerprint"),
        "old_not_after": _date_parts(node.get("old_not_after")) or node.get("old_not_after"),
        "not_after": _date_parts(node.get("not_after")) or node.get("not_after"),
        "backup_id": node.get("backup_id"),
        "timings": _timings(node),
        "evidence": _evidence(node),
        "error": node.get("error"),
    }


def _load(job: dict) -> list[dict]:
    load = _dict(job.get("load"))
    phases = [p for p in ("before", "during") if isinstance(load.get(p), dict)]
    phases += sorted(p for p in load if p not in phases and isinstance(load[p], dict))
    return [
        {
            "phase": phase,
            "ops": _metric(load[phase].get("ops")),
            "failed": _metric(load[phase].get("failed")),
            "bad": bool(_float(load[phase].get("failed"))),
            "ops_per_s": _metric(load[phase].get("ops_per_s"), "{:,.1f}"),
            "p50": _metric(load[phase].get("p50_ms"), "{:.1f} ms"),
            "p99": _metric(load[phase].get("p99_ms"), "{:.1f} ms"),
        }
        for phase in phases
    ]


def _view(job: dict) -> dict:
    plan = _dict(job.get("plan"))
    params = _dict(job.get("params"))
    canary = {str(n) for n in _list(plan.get("canary"))}
    deployed, total = _deployed_count(job)
    return {
        "title": f"certdeploy {job.get('kind') or 'job'} {job.get('job_id') or ''}".strip(),
        "css": _CSS,
        "job_id": job.get("job_id"),
        "status_badge": _badge(job.get("status")),
        "meta": [
            ("Cluster", job.get("cluster")),
            ("Kind", job.get("kind")),
            ("Created", _iso(job.get("created"))),
            ("Updated", _iso(job.get("updated"))),
            ("Wall time", _fmt_seconds(_wall_time(job))),
            ("Deployed", f"{deployed}/{total} nodes"),
        ],
        "params": [(k, json.dumps(params[k], default=str)) for k in sorted(params, key=str)],
        "batches": " ".join(
            "[" + ", ".join(str(n) for n in _list(b)) + "]" for b in _list(plan.get("batches"))
        ),
        "canary": ", ".join(str(n) for n in _list(plan.get("canary"))),
        "failures": _failed_nodes(job),
        "gantt": gantt_svg(job, width=_HTML_GANTT_WIDTH),  # built with its own escaping
        "columns": NODE_COLUMNS,
        "nodes": [_node_view(job, name, canary) for name in _node_order(job)],
        "load": _load(job),
        "dash": _DASH,
    }


def render_html(job: dict) -> str:
    """A complete, self-contained HTML report for ``job`` (inline CSS and SVG, no scripts)."""
    return templates.render(templates.REPORT_HTML, **_view(_dict(job)))
