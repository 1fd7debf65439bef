"""Who is connected, as each node sees it: ``system_views.clients``.

Cassandra 5.0 has no certificate column there. Under ``MutualTlsAuthenticator`` the
``username`` column is the role the client certificate's identity maps to, so with one role per
certificate generation the server itself tells which generation every live connection uses.
The table is node-local: each node is asked on its own.
"""

from __future__ import annotations

from . import cql

COLUMNS = "address, port, username, driver_name, ssl_protocol, connection_stage"
QUERY = f"SELECT {COLUMNS} FROM system_views.clients"


class Readers:
    """One pinned session per host, opened on the first :meth:`read` and kept for the next
    ones: a verification that polls the table every half second then costs one query per host
    and round, not a new TLS connection and login each time. A host whose read fails is closed
    and opened afresh on the next read. ``hosts``: names, or ``(host, port)`` pairs (a name
    alone uses ``port``). Use it as a context manager."""

    def __init__(self, hosts, ssl_context, port: int = 9042, timeout: float = 10.0):
        pairs = [(h, port) if isinstance(h, str) else (h[0], int(h[1])) for h in hosts]
        self.ports = dict(pairs)
        self.hosts = [h for h, _ in pairs]
        self.ssl_context, self.timeout = ssl_context, timeout
        self.open: dict = {}  # host -> (driver cluster, session)

    def _session(self, host):
        if host not in self.open:
            driver = cql.cluster(
                [host], self.ssl_context, port=self.ports[host], pin=True,
                timeout=self.timeout, request_timeout=self.timeout,
            )  # fmt: skip
            try:
                self.open[host] = (driver, driver.connect())
            except Exception:
                driver.shutdown()
                raise
        return self.open[host][1]

    def read(self) -> dict:
        """``{host: [row, ...]}`` (rows as dicts; ``address`` as text). A host that cannot be
        asked maps to ``{"error": "..."}``."""
        seen: dict = {}
        for host in self.hosts:
            try:
                rows = self._session(host).execute(QUERY, timeout=self.timeout)
                seen[host] = [{**row._asdict(), "address": str(row.address)} for row in rows]
            except Exception as exc:  # noqa: BLE001 - the driver raises many types; all mean "no"
                seen[host] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
                self._drop(host)
        return seen

    def _drop(self, host) -> None:
        driver, _ = self.open.pop(host, (None, None))
        if driver is not None:
            driver.shutdown()

    def close(self) -> None:
        for host in list(self.open):
            self._drop(host)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connections(hosts, ssl_context, port: int = 9042, timeout: float = 10.0) -> dict:
    """One read of every host (see :meth:`Readers.read`)."""
    with Readers(hosts, ssl_context, port, timeout) as readers:
        return readers.read()


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
