"""Who is connected, as each node sees it: ``system_views.clients``.

Cassandra 5.0 has no certificate column there. Under ``MutualTlsAuthenticator`` the
``username`` column is the role the client certificate's identity maps to, so with one role per
certificate generation the server itself tells which generation every live connection uses.
The table is node-local: each node is asked on its own.
"""

from __future__ import annotations

from . import cql

COLUMNS = "address, port, username, driver_name, ssl_protocol, connection_stage"


def connections(hosts, ssl_context, port: int = 9042, timeout: float = 10.0) -> dict:
    """``{host: [row, ...]}`` (rows as dicts; ``address`` as text). A host that cannot be
    asked maps to ``{"error": "..."}``."""
    seen: dict = {}
    for host in hosts:
        try:
            rows = cql.query(
                [host],
                ssl_context,
                f"SELECT {COLUMNS} FROM system_views.clients",
                timeout=timeout,
                port=port,
            )
        except Exception as exc:  # noqa: BLE001 - the driver raises many types; all mean "no"
            seen[host] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            continue
        seen[host] = [{**row, "address": str(row["address"])} for row in rows]
    return seen


def scoped(seen: dict, endpoints) -> dict:
    """``seen`` with only the rows whose ``(address, port)`` is in ``endpoints`` (one process's
    sockets, from :func:`.sockets.endpoints`); unreadable hosts stay as they are."""
    keep = set(endpoints)
    return {
        host: rows
        if isinstance(rows, dict)
        else [r for r in rows if (r["address"], int(r["port"])) in keep]
        for host, rows in seen.items()
    }


def _matcher(among):
    if among is None:
        return lambda role: True
    return among if callable(among) else (lambda role: role in among)


def roles(seen: dict, among=None) -> dict:
    """``{host: {role: connection count}}``, counting only roles in ``among`` when given
    (a set, or a predicate: for example every generation of one application's roles)."""
    result, wanted = {}, _matcher(among)
    for host, rows in seen.items():
        if isinstance(rows, dict):
            result[host] = rows
            continue
        counts: dict = {}
        for row in rows:
            role = row.get("username")
            if wanted(role):
                counts[role] = counts.get(role, 0) + 1
        result[host] = counts
    return result


def only_under(seen: dict, wanted: str, among) -> tuple[bool, list[str]]:
    """Do ``among``'s connections show up on every host, and only under role ``wanted``?
    Returns ``(ok, problems)``; the problems name the host and the roles it saw."""
    problems = []
    for host, counts in roles(seen, among).items():
        if "error" in counts:
            problems.append(f"{host}: cannot read system_views.clients ({counts['error']})")
        elif not counts.get(wanted):
            problems.append(f"{host}: no connection under {wanted!r} (seen {counts or 'none'})")
        elif set(counts) != {wanted}:
            others = {role: n for role, n in counts.items() if role != wanted}
            problems.append(f"{host}: connections still under {others}")
    return not problems, problems
