"""The ring as one node sees it, and whether it is healthy. Pure functions.

Two sources give the same rows (``{dc, address, code, rack, host_id}``, ``code`` as in
``nodetool status``: ``UN``, ``DN``, ``UJ``...):

- :func:`from_gossip`: two reads of ``system_views.gossip_info`` over CQL, no JVM. The state
  letter comes from the gossip status; the node is Up when its heartbeat (or generation)
  advanced between the reads, which a dead node's cannot (the failure detector's verdict
  itself is JMX-only, and it convicts later than a stopped heartbeat shows);
- :func:`parse_status`: ``nodetool status`` text, for a node read by hand.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"^[UD][NLJM]$")
_HOST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f-]{27}$")


def parse_status(text: str) -> list[dict]:
    """Rows of ``nodetool status``: ``{dc, address, status, state, code, rack, host_id}``."""
    rows, dc = [], None
    for line in text.splitlines():
        if line.startswith("Datacenter:"):
            dc = line.split(":", 1)[1].strip()
            continue
        # "UN  127.0.0.1  104.36 KiB  1  33.3%  <host id>  rack1", or with one token per node
        # "UN  127.0.0.4  114.37 KiB  100.0%  <host id>  0  rack1" (a Token column after the
        # host id): the load may hold a space, so anchor on both ends.
        fields = line.split()
        if len(fields) < 6 or not _CODE.match(fields[0]):
            continue
        host_id = next((f for f in fields[-3:-1] if _HOST_ID.match(f)), None)
        if host_id:
            rows.append(
                {
                    "dc": dc,
                    "address": fields[1],
                    "code": fields[0],
                    "rack": fields[-1],
                    "host_id": host_id,
                }
            )
    return rows


def not_up_normal(rows: list[dict]) -> list[str]:
    """Addresses whose state is not UN (``address=code``)."""
    return [f"{r['address']}={r['code']}" for r in rows if r["code"] != "UN"]


def ring_healthy(rows: list[dict], expected_nodes: int | None = None) -> bool:
    """True when every node is UN (and, if given, the ring has ``expected_nodes`` members)."""
    if not rows or not_up_normal(rows):
        return False
    return expected_nodes is None or len(rows) >= expected_nodes


# Gossip's STATUS (``status_with_port``) head -> the state letter of ``nodetool status``.
# LEFT and removed nodes are not ring members (``nodetool status`` leaves them out); a
# status not listed here reads as "?", which no healthy ring has.
_GOSSIP_STATE = {
    "NORMAL": "N",
    "shutdown": "N",  # drained and stopped: Down whatever its last heartbeat
    "LEAVING": "L",
    "removing": "L",
    "MOVING": "M",
    "BOOT": "J",
    "BOOT_REPLACE": "J",
    "hibernate": "J",
}
_NOT_MEMBERS = ("LEFT", "removed")


def gossip_status(row: dict) -> str:
    status = row.get("status_with_port") or row.get("status") or ""
    return status.split(",", 1)[0]


def advanced(before: dict | None, after: dict) -> bool:
    """The endpoint gossiped between two reads: a higher heartbeat, or a new generation
    (it restarted)."""
    if before is None:
        return False
    if (after.get("generation") or 0) != (before.get("generation") or 0):
        return (after.get("generation") or 0) > (before.get("generation") or 0)
    return (after.get("heartbeat") or 0) > (before.get("heartbeat") or 0)


def all_advanced(first: list[dict], last: list[dict]) -> bool:
    """Every member's heartbeat moved (or it is shut down, so waiting cannot help)."""
    before = {r["address"]: r for r in first}
    return all(
        advanced(before.get(r["address"]), r) or gossip_status(r) == "shutdown"
        for r in last
        if gossip_status(r) not in _NOT_MEMBERS
    )


def from_gossip(first: list[dict], last: list[dict]) -> list[dict]:
    """Ring rows from two reads of ``system_views.gossip_info`` (rows as dicts), ``first``
    before ``last``."""
    before = {r["address"]: r for r in first}
    rows = []
    for r in last:
        status = gossip_status(r)
        if status in _NOT_MEMBERS:
            continue
        up = status != "shutdown" and advanced(before.get(r["address"]), r)
        rows.append(
            {
                "dc": r.get("dc"),
                "address": str(r["address"]),
                "code": ("U" if up else "D") + _GOSSIP_STATE.get(status, "?"),
                "rack": r.get("rack"),
                "host_id": r.get("host_id"),
            }
        )
    return sorted(rows, key=lambda row: (row["dc"] or "", row["address"]))
