"""Beacon: is this minion's Cassandra node serving the certificate on disk, and for how long?

Each run, for every configured target (pillar ``certdeploy:targets:<name>``), it asks the
execution module (``certdeploy.health``: new TLS connections to the client and internode ports,
the served leaf against what certdeploy last deployed, the installed keystore's expiry), fires
events and writes node_exporter textfile metrics. Salt's beacon loader gives beacons no utils
path, so this module holds only the event shaping and the textfile; the logic is the module's.

.. code-block:: yaml

    beacons:
      certdeploy:
        - interval: 60
        - target: cassandra          # or a list; default: every target in pillar
        - warn_days: 30
        - textfile: /var/lib/node_exporter/textfile/certdeploy.prom
        - timeout: 3                 # seconds per TLS probe (optional)

Events (fired with these *exact* tags through ``event.send``, for the reactor, and also
returned to Salt, which tags them ``salt/beacon/<minion>/certdeploy/<suffix>``):

``certdeploy/health/failed``
    ``{"node", "target", "minion", "expected", "served", "reason": "mismatch"|"not_serving"}``
``certdeploy/expiry/warning``
    ``{"node", "target", "minion", "not_after", "days_left"}``

Only fingerprints, dates and error strings leave this module: never key material.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

log = logging.getLogger(__name__)
__virtualname__ = "certdeploy"

HEALTH_TAG = "certdeploy/health/failed"
EXPIRY_TAG = "certdeploy/expiry/warning"
DEFAULT_WARN_DAYS = 30
DEFAULT_TIMEOUT = 3.0
LABELS = ("node", "target", "cluster")


def __virtual__():
    if "certdeploy.health" not in __salt__:
        return (
            False,
            "certdeploy beacon: the certdeploy execution module is not loaded on this minion; "
            "run saltutil.sync_all (and make sure cryptography is installed)",
        )
    return __virtualname__


def _as_dict(config) -> dict:
    if isinstance(config, dict):
        return dict(config)
    merged = {}
    for item in config:
        merged.update(item)
    return merged


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(config):
    """``(True, message)`` for a usable configuration, else ``(False, why)``."""
    if isinstance(config, list):
        if not all(isinstance(item, dict) for item in config):
            return False, "certdeploy beacon: configuration must be a list of dicts (or a dict)"
    elif not isinstance(config, dict):
        return False, "certdeploy beacon: configuration must be a list of dicts (or a dict)"
    conf = _as_dict(config)
    interval = conf.get("interval", 1)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
        return False, f"certdeploy beacon: interval must be a positive integer, not {interval!r}"
    warn_days = conf.get("warn_days", DEFAULT_WARN_DAYS)
    if not _is_number(warn_days) or warn_days < 0:
        return False, f"certdeploy beacon: warn_days must be a number >= 0, not {warn_days!r}"
    timeout = conf.get("timeout", DEFAULT_TIMEOUT)
    if not _is_number(timeout) or timeout <= 0:
        return False, f"certdeploy beacon: timeout must be a number > 0, not {timeout!r}"
    if "target" in conf:
        names = conf["target"] if isinstance(conf["target"], list) else [conf["target"]]
        if not names or not all(isinstance(n, str) and n for n in names):
            return False, "certdeploy beacon: target must be a target name or a list of names"
    if "textfile" in conf:
        path = conf["textfile"]
        if not isinstance(path, str) or not os.path.isabs(path) or not path.endswith(".prom"):
            return False, (
                f"certdeploy beacon: textfile must be an absolute path ending in .prom "
                f"(node_exporter reads only *.prom), not {path!r}"
            )
    return True, "Valid beacon configuration"


def _target_names(conf: dict) -> list[str]:
    if "target" in conf:
        return conf["target"] if isinstance(conf["target"], list) else [conf["target"]]
    return __salt__["certdeploy.targets"]() or ["cassandra"]


def _fire(tag: str, data: dict) -> None:
    try:
        __salt__["event.send"](tag, data)
    except Exception as exc:  # noqa: BLE001 - the beacon must keep running and still return
        log.warning("certdeploy beacon: could not send %s for %s: %s", tag, data.get("node"), exc)


def _timestamp(iso: str | None) -> float | None:
    if not iso:
        return None
    when = dt.datetime.fromisoformat(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _events(health: dict) -> list[dict]:
    """The health/expiry events one target's health calls for (fired, and returned)."""
    minion, events = __opts__["id"], []
    who = {"node": health["node"], "target": health["target"], "minion": minion}
    if not health["match"]:
        data = {
            **who,
            "expected": health["expected"],
            "served": health["served"],
            "reason": "mismatch" if health["serving"] else "not_serving",
        }
        log.warning(
            "certdeploy beacon: %s/%s health failed (%s): expected %s, served %s",
            health["node"],
            health["target"],
            data["reason"],
            data["expected"],
            data["served"],
        )
        _fire(HEALTH_TAG, data)
        events.append({"tag": "health/failed", **data})
    if health["expiring"]:
        data = {**who, "not_after": health["not_after"], "days_left": health["days_left"]}
        log.warning(
            "certdeploy beacon: %s/%s certificate expires in %.1f days (%s)",
            health["node"],
            health["target"],
            data["days_left"],
            data["not_after"],
        )
        _fire(EXPIRY_TAG, data)
        events.append({"tag": "expiry/warning", **data})
    return events


def _write_textfile(path: str, samples: list[dict]) -> None:
    """node_exporter's textfile, through prometheus_client (written to a temp name, then
    renamed: a scrape never sees half a file), readable by the exporter (0644)."""
    registry = CollectorRegistry()
    gauges = {
        "expiry": Gauge(
            "certdeploy_cert_expiry_timestamp_seconds",
            "Unix time at which the installed certificate expires (notAfter).",
            LABELS,
            registry=registry,
        ),
        "match": Gauge(
            "certdeploy_served_matches_expected",
            "1 if the client and internode ports serve the expected certificate, else 0.",
            LABELS,
            registry=registry,
        ),
        "deployed": Gauge(
            "certdeploy_last_deployment_timestamp_seconds",
            "Unix time of the last certdeploy deployment on this node.",
            LABELS,
            registry=registry,
        ),
        "success": Gauge(
            "certdeploy_last_deployment_success",
            "1 if the last certdeploy deployment ended 'deployed', else 0 (label outcome).",
            (*LABELS, "outcome"),
            registry=registry,
        ),
    }
    for sample in samples:
        labels = [str(sample.get(name) or "") for name in LABELS]
        if sample.get("not_after"):
            gauges["expiry"].labels(*labels).set(_timestamp(sample["not_after"]))
        gauges["match"].labels(*labels).set(1 if sample["match"] else 0)
        if sample.get("last_deploy_timestamp") is not None:
            gauges["deployed"].labels(*labels).set(sample["last_deploy_timestamp"])
        if sample.get("last_outcome"):
            outcome = sample["last_outcome"]
            gauges["success"].labels(*labels, outcome).set(1 if outcome == "deployed" else 0)
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    write_to_textfile(path, registry)
    os.chmod(path, 0o644)


def beacon(config):
    """Ask every configured target's health; return (and fire) health/expiry events."""
    conf = _as_dict(config)
    events, samples = [], []
    for name in _target_names(conf):
        try:
            health = __salt__["certdeploy.health"](
                target=name,
                warn_days=conf.get("warn_days", DEFAULT_WARN_DAYS),
                timeout=conf.get("timeout", DEFAULT_TIMEOUT),
            )
        except Exception as exc:  # noqa: BLE001 - one bad target must not stop the rest
            log.warning("certdeploy beacon: target %s skipped: %s", name, exc)
            continue
        samples.append(health)
        events.extend(_events(health))
    if conf.get("textfile"):
        try:
            _write_textfile(conf["textfile"], samples)
        except OSError as exc:
            log.warning("certdeploy beacon: cannot write %s: %s", conf["textfile"], exc)
    return events
