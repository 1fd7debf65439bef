"""The report's timeline: an inline SVG Gantt chart of every node's steps."""

from __future__ import annotations

from .report_model import (
    _dict,
    _esc,
    _float,
    _fmt_seconds,
    _list,
    _node,
    _node_order,
    _step_colors,
    _step_end,
    _steps,
    _time_span,
)

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
