"""The report as a plain-text table (what ``salt-run`` prints)."""

from __future__ import annotations

from .report_model import (
    _DASH,
    _deployed_count,
    _dict,
    _float,
    _metric,
    _node,
    _node_order,
    _short_fp,
    _wall_time,
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
