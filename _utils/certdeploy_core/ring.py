"""Parse ``nodetool status`` into a ring description and judge its health. Pure functions."""

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
