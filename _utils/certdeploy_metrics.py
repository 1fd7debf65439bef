"""Prometheus metrics for node_exporter's textfile collector.

The beacon renders one sample per target and writes it to ``<dir>/certdeploy.prom``; the
collector reads every ``*.prom`` file there on each scrape. Writes are atomic (temp file in the
same directory, then rename) so a scrape never sees a half-written file. Pure functions; no
Salt dunders; no key material (only dates, outcomes and match flags).
"""

from __future__ import annotations

import math
import os

import certdeploy_files

LABELS = ("node", "target", "cluster")

# name -> help text; all gauges.
METRICS = {
    "certdeploy_cert_expiry_timestamp_seconds": (
        "Unix time at which the installed certificate expires (notAfter)."
    ),
    "certdeploy_served_matches_expected": (
        "1 if the client and internode ports serve the installed certificate, else 0."
    ),
    "certdeploy_last_deployment_timestamp_seconds": (
        "Unix time of the last certdeploy deployment on this node."
    ),
    "certdeploy_last_deployment_success": (
        "1 if the last certdeploy deployment ended 'deployed', else 0 (label outcome)."
    ),
}


def escape_label(value) -> str:
    """Label value escaping of the text exposition format: backslash, quote, newline."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _labels(sample: dict, extra: dict | None = None) -> str:
    pairs = [(name, sample.get(name)) for name in LABELS]
    pairs += list((extra or {}).items())
    body = ",".join(f'{name}="{escape_label("" if v is None else v)}"' for name, v in pairs)
    return "{" + body + "}"


def _lines(sample: dict) -> dict[str, tuple[str, float] | None]:
    """Metric name -> (labels, value), or None when that value is unknown."""
    matches = sample.get("served_matches")
    outcome = sample.get("last_outcome")
    expiry = sample.get("expiry_timestamp")
    deployed = sample.get("last_deploy_timestamp")
    return {
        "certdeploy_cert_expiry_timestamp_seconds": (
            None if expiry is None else (_labels(sample), expiry)
        ),
        "certdeploy_served_matches_expected": (
            None if matches is None else (_labels(sample), 1 if matches else 0)
        ),
        "certdeploy_last_deployment_timestamp_seconds": (
            None if deployed is None else (_labels(sample), deployed)
        ),
        "certdeploy_last_deployment_success": (
            None
            if outcome is None
            else (_labels(sample, {"outcome": outcome}), 1 if outcome == "deployed" else 0)
        ),
    }


def render(samples: list[dict]) -> str:
    """Text exposition of ``samples`` (one dict per target):
    ``{"node", "target", "cluster", "expiry_timestamp", "served_matches", "last_outcome",
    "last_deploy_timestamp"}``. A line whose value is ``None`` is left out; HELP/TYPE are
    always written so the families exist even before the first sample."""
    per_sample = [_lines(s) for s in samples]
    out = []
    for name, help_text in METRICS.items():
        out.append(f"# HELP {name} {_escape_help(help_text)}")
        out.append(f"# TYPE {name} gauge")
        for lines in per_sample:
            entry = lines[name]
            if entry is not None:
                labels, value = entry
                out.append(f"{name}{labels} {_value(value)}")
    return "\n".join(out) + "\n"


def write(path: str, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0644 (node_exporter runs as another
    user). The directory is created (0755) if missing. Always rewrites, so the file's mtime
    tells how fresh the metrics are (``node_textfile_mtime_seconds``); the temp file's name
    does not end in ".prom", so the collector never reads a half-written one."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    certdeploy_files.atomic_write(path, text.encode("utf-8"), mode=0o644, always=True)
