"""Parse ``nodetool status`` into a ring description and judge its health. Pure functions."""

from __future__ import annotations

import re

_ROW = re.compile(
    r"^(?P<status>[UD])(?P<state>[NLJM])\s+(?P<address>\S+)\s+(?P<load>\?|\S+(?: \S?i?B)?)\s+"
    r"(?P<tokens>\d+)\s+(?P<owns>\S+)\s+(?P<host_id>[0-9a-f-]{36})\s+(?P<rack>\S+)\s*$"
)


def parse_status(text: str) -> list[dict]:
    """Rows of ``nodetool status``: ``{dc, address, status, state, code, rack, host_id}``."""
    rows, dc = [], None
    for line in text.splitlines():
        if line.startswith("Datacenter:"):
            dc = line.split(":", 1)[1].strip()
            continue
        match = _ROW.match(line.strip())
        if match:
            row = match.groupdict()
            rows.append(
                {
                    "dc": dc,
                    "address": row["address"],
                    "code": row["status"] + row["state"],
                    "rack": row["rack"],
                    "host_id": row["host_id"],
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
