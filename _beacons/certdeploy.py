"""Beacon: is this minion's Cassandra node serving the certificate on disk, and for how long?

Each run, for every configured target (pillar ``certdeploy:targets:<name>``), it opens new TLS
connections to the client and internode ports and compares the served leaf with the installed
keystore, checks the keystore's expiry, and writes node_exporter textfile metrics.

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
import importlib
import logging
import os
import sys

log = logging.getLogger(__name__)
__virtualname__ = "certdeploy"

HEALTH_TAG = "certdeploy/health/failed"
EXPIRY_TAG = "certdeploy/expiry/warning"
DEFAULT_WARN_DAYS = 30
DEFAULT_TIMEOUT = 3.0

# alias -> module in _utils. Salt's beacon loader (unlike the execution-module loader) does not
# put utils_dirs / extmods/utils on sys.path, so these are imported with those dirs added for
# the duration of the import, exactly as the other loaders do it.
_UTILS = {
    "health_check": "certdeploy_health_check",
    "metrics": "certdeploy_metrics",
    "certdeploy_node": "certdeploy_node",
    "certdeploy_target": "certdeploy_target",
}
health_check = metrics = certdeploy_node = certdeploy_target = None
HAS_UTILS = False
IMPORT_ERROR = ""


def _load_utils(extra_dirs=()) -> bool:
    global HAS_UTILS, IMPORT_ERROR
    if HAS_UTILS:
        return True
    added = [d for d in extra_dirs if d not in sys.path]
    sys.path.extend(added)
    try:
        importlib.invalidate_caches()
        modules = {alias: importlib.import_module(name) for alias, name in _UTILS.items()}
    except ImportError as exc:
        IMPORT_ERROR = str(exc)
        return False
    finally:
        for directory in added:
            if directory in sys.path:
                sys.path.remove(directory)
    globals().update(modules)
    HAS_UTILS, IMPORT_ERROR = True, ""
    return True


def _utils_dirs() -> list[str]:
    dirs = list(__opts__.get("utils_dirs") or [])
    if __opts__.get("extension_modules"):
        dirs.append(os.path.join(__opts__["extension_modules"], "utils"))  # saltutil.sync_utils
    return [d for d in dirs if os.path.isdir(d)]


_load_utils()  # already importable (tests, or another loader imported them): done


def __virtual__():
    if not _load_utils(_utils_dirs()):
        return (
            False,
            f"certdeploy beacon: shared utils not importable ({IMPORT_ERROR}); "
            "run saltutil.sync_all and make sure cryptography is installed",
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
    return certdeploy_target.target_names(__pillar__) or ["cassandra"]


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


def _check(name: str, conf: dict, cluster, host) -> tuple[list[dict], dict | None]:
    """Events and the metrics sample for one target."""
    minion = __opts__["id"]
    try:
        tgt = certdeploy_target.load_target(__pillar__, name, minion)
    except Exception as exc:  # noqa: BLE001 - bad pillar for one target must not stop the rest
        log.warning("certdeploy beacon: target %s skipped: %s", name, exc)
        return [], None
    sample = {"node": tgt.node, "target": tgt.name, "cluster": cluster}
    record = certdeploy_node.last_record(tgt, host) or {}
    sample["last_outcome"] = record.get("outcome")
    sample["last_deploy_timestamp"] = record.get("epoch")
    try:
        health = health_check.node_health(
            tgt,
            expected=record.get("expected_fingerprint"),
            warn_days=conf.get("warn_days", DEFAULT_WARN_DAYS),
            timeout=conf.get("timeout", DEFAULT_TIMEOUT),
        )
    except Exception as exc:  # noqa: BLE001 - e.g. an unreadable keystore; report, keep going
        log.warning("certdeploy beacon: %s/%s: health check failed: %s", tgt.node, name, exc)
        return [], sample
    sample["expiry_timestamp"] = _timestamp(health["not_after"])
    sample["served_matches"] = health["match"]

    events = []
    if not health["match"]:
        data = {
            "node": tgt.node,
            "target": tgt.name,
            "minion": minion,
            "expected": health["expected"],
            "served": health["served"],
            "reason": "mismatch" if health["serving"] else "not_serving",
        }
        log.warning(
            "certdeploy beacon: %s/%s health failed (%s): expected %s, served %s",
            tgt.node,
            name,
            data["reason"],
            data["expected"],
            data["served"],
        )
        _fire(HEALTH_TAG, data)
        events.append({"tag": "health/failed", **data})
    if health["expiring"]:
        data = {
            "node": tgt.node,
            "target": tgt.name,
            "minion": minion,
            "not_after": health["not_after"],
            "days_left": health["days_left"],
        }
        log.warning(
            "certdeploy beacon: %s/%s certificate expires in %.1f days (%s)",
            tgt.node,
            name,
            data["days_left"],
            data["not_after"],
        )
        _fire(EXPIRY_TAG, data)
        events.append({"tag": "expiry/warning", **data})
    return events, sample


def beacon(config):
    """Probe every configured target; return (and fire) health/expiry events."""
    conf = _as_dict(config)
    pillar = certdeploy_target.plain(__pillar__.get("certdeploy") or {})
    cluster = pillar.get("cluster")
    host = certdeploy_node.Host(run=None, service=None, cachedir=__opts__["cachedir"])
    events, samples = [], []
    for name in _target_names(conf):
        found, sample = _check(name, conf, cluster, host)
        events.extend(found)
        if sample is not None:
            samples.append(sample)
    if conf.get("textfile"):
        try:
            metrics.write(conf["textfile"], metrics.render(samples))
        except OSError as exc:
            log.warning("certdeploy beacon: cannot write %s: %s", conf["textfile"], exc)
    return events
