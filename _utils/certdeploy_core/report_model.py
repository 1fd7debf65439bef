"""The rollout report's model: what a job record says, read defensively (a missing optional key
never raises), plus the shared constants and value formatting of the HTML and text views."""

from __future__ import annotations

import html

from . import timeutil

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
        return timeutil.epoch_iso(value)
    except (OverflowError, OSError, ValueError):
        return _DASH


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


def _metric(value, fmt: str = "{:,.0f}") -> str:
    """A load metric formatted with ``fmt``, or an em dash when missing."""
    number = _float(value)
    return _DASH if number is None else fmt.format(number)
