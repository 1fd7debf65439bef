"""Plan a rolling rollout: which Cassandra nodes go down together, and in what order.

Pure and deterministic: no Salt dunders, no I/O. The same targets, ring and keyspaces always give
the same plan, so an interrupted rollout can resume from the plan with ``next_batch``.

Safety model. A batch is a set of nodes that are restarted (or may be unavailable) at once. A
token range keeps QUORUM while at most ``r - (r // 2 + 1)`` of its ``r`` replicas are down. The
planner does not know tokens, so it assumes any two nodes of a DC may share a range and caps the
nodes of a DC in a batch by the smallest such tolerance over the keyspaces (``per_dc_limit``).
Rack-parallel mode replaces that assumption with rack knowledge: when NetworkTopologyStrategy
puts every replica of a range on a distinct rack, a whole rack holds at most one replica of any
range and may go at once.
"""

from __future__ import annotations

import functools
import socket
from collections import deque
from dataclasses import dataclass

from salt.exceptions import SaltInvocationError

NTS = "NetworkTopologyStrategy"
SIMPLE = "SimpleStrategy"
LOCAL = "LocalStrategy"
EVERYWHERE = "EverywhereStrategy"
_KNOWN_CLASSES = (NTS, SIMPLE, LOCAL, EVERYWHERE)
_PILLAR_HINT = "certdeploy:targets:cassandra:dc and certdeploy:targets:cassandra:rack"


@dataclass(frozen=True)
class _Node:
    id: str
    address: str
    dc: str
    rack: str

    def sort_key(self) -> tuple:
        return (self.dc, self.rack, _address_key(self.address), self.id)


# --- keyspaces ----------------------------------------------------------------------------------


def normalise_keyspaces(rows) -> list[dict]:
    """Keyspaces that matter for availability, as ``{"name", "class", "replication"}``.

    Accepts rows as read from ``system_schema.keyspaces`` (``keyspace_name``, and ``class`` either
    beside or inside ``replication``; Java class names; RF values as strings, including the
    transient form ``"3/1"``) and is idempotent on its own output. Drops LocalStrategy keyspaces
    (never replicated) and ``system*`` EverywhereStrategy ones (node-local bookkeeping); every
    other keyspace, ``system_auth``/``system_distributed``/``system_traces`` included, is kept.
    NetworkTopologyStrategy entries with RF 0 are dropped (the DC holds no replica). Sorted by name.
    """
    result = []
    for row in rows or ():
        keyspace = _normalise_keyspace(row)
        if keyspace is not None:
            result.append(keyspace)
    return sorted(result, key=lambda k: k["name"])


def _normalise_keyspace(row) -> dict | None:
    if not isinstance(row, dict):
        raise SaltInvocationError(
            f"keyspaces: {row!r} is not a mapping. Fix: pass rows of system_schema.keyspaces"
        )
    name = row.get("name") or row.get("keyspace_name")
    if not isinstance(name, str) or not name:
        raise SaltInvocationError(
            f"keyspaces: row {row!r} has no name. Fix: give each row name (or keyspace_name)"
        )
    replication = dict(row.get("replication") or {})
    cls = _short_class(name, row.get("class") or replication.pop("class", None))
    replication.pop("class", None)
    if cls == LOCAL or (cls == EVERYWHERE and name.startswith("system")):
        return None
    if cls == SIMPLE:
        if "replication_factor" not in replication:
            raise SaltInvocationError(
                f"keyspace {name}: SimpleStrategy without replication_factor. Fix: pass its "
                "replication map from system_schema.keyspaces"
            )
        replication = {"replication_factor": _rf(name, replication["replication_factor"])}
    elif cls == NTS:
        if "replication_factor" in replication:
            # Cassandra expands this shorthand when the keyspace is created; only the per-DC map
            # says which DCs it really covers.
            raise SaltInvocationError(
                f"keyspace {name}: NetworkTopologyStrategy with replication_factor. Fix: pass the "
                "per-DC map as stored in system_schema.keyspaces"
            )
        counts = {str(dc): _rf(name, value) for dc, value in replication.items()}
        replication = {dc: counts[dc] for dc in sorted(counts) if counts[dc] > 0}
    else:
        # EverywhereStrategy: one replica on every node; the RF per DC comes from the ring.
        replication = {}
    return {"name": name, "class": cls, "replication": replication}


def _short_class(name: str, cls) -> str:
    short = str(cls or "").rsplit(".", 1)[-1]
    if short not in _KNOWN_CLASSES:
        raise SaltInvocationError(
            f"keyspace {name}: replication class {cls!r} is not one the planner can reason "
            f"about ({', '.join(_KNOWN_CLASSES)}). Fix: pass its class from system_schema.keyspaces"
        )
    return short


def _rf(name: str, value) -> int:
    # Transient replication stores "total/transient"; QUORUM counts all replicas.
    text = str(value).split("/", 1)[0].strip()
    if isinstance(value, bool) or not text.isdigit():
        raise SaltInvocationError(
            f"keyspace {name}: replication factor {value!r} is not a whole number. Fix: pass the "
            "replication map as stored in system_schema.keyspaces"
        )
    return int(text)


def _quorum_tolerance(rf: int) -> int:
    """Replicas of a range that may be down while QUORUM still succeeds (0 for RF 1 and 2)."""
    return max(0, rf - (rf // 2 + 1))


def _rf_in_dc(keyspace: dict, dc: str, dc_sizes: dict[str, int]) -> int:
    if keyspace["class"] == SIMPLE:
        # SimpleStrategy ignores DCs: any node of any DC may hold any of its replicas.
        return keyspace["replication"]["replication_factor"]
    if keyspace["class"] == EVERYWHERE:
        return dc_sizes.get(dc, 0)
    return keyspace["replication"].get(dc, 0)


# --- ring -----------------------------------------------------------------------------------------


def _node(row, *, where: str) -> _Node:
    if not isinstance(row, dict):
        raise SaltInvocationError(f"{where}: {row!r} is not a mapping. Fix: pass node dicts")
    label = row.get("id") or row.get("address") or repr(row)
    for field in ("dc", "rack"):
        if not isinstance(row.get(field), str) or not row[field]:
            raise SaltInvocationError(
                f"{label}: {field} is not set. Fix: set {_PILLAR_HINT} in its pillar"
            )
    if not isinstance(row.get("address"), str) or not row["address"]:
        raise SaltInvocationError(
            f"{label}: address is not set. Fix: give the node its listen address"
        )
    # Ring rows from nodetool status carry no id; their address names them.
    return _Node(
        id=str(row.get("id") or row["address"]),
        address=row["address"],
        dc=row["dc"],
        rack=row["rack"],
    )


@functools.lru_cache(maxsize=65536)
def _address_key(address: str) -> tuple:
    # Sort 127.0.0.10 after 127.0.0.9; hostnames (allowed) after all IPs. inet_pton, not
    # ipaddress: a 10,000-node plan sorts twice, and ipaddress's parser was 3/4 of its time.
    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        try:
            return (0, version, int.from_bytes(socket.inet_pton(family, address), "big"))
        except OSError:
            continue
    return (1, 0, address)


def _ring(ring, targets: list[_Node]) -> list[_Node]:
    """Ring members plus the targets (a target is a ring member even if ``ring`` missed it)."""
    members = {}
    for member in [_node(row, where="ring") for row in ring or ()] + targets:
        known = members.setdefault(member.address, member)
        if (known.dc, known.rack) != (member.dc, member.rack):
            raise SaltInvocationError(
                f"{member.id}: placed in {member.dc}/{member.rack} but the ring has "
                f"{member.address} in {known.dc}/{known.rack}. Fix: make {_PILLAR_HINT} match "
                "the node's cassandra-rackdc.properties"
            )
    return sorted(members.values(), key=_Node.sort_key)


def _dc_sizes(ring: list[_Node]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for member in ring:
        sizes[member.dc] = sizes.get(member.dc, 0) + 1
    return sizes


def _racks(ring: list[_Node]) -> dict[str, set[str]]:
    racks: dict[str, set[str]] = {}
    for member in ring:
        racks.setdefault(member.dc, set()).add(member.rack)
    return racks


# --- limits ---------------------------------------------------------------------------------------


def max_safe_unavailable(keyspaces, ring) -> dict[str, int]:
    """Per DC of ``ring``: how many of its nodes may be down at once with every range keeping
    QUORUM, assuming any two nodes may share a range: min over keyspaces of ``r - quorum(r)``.

    0 means no restart is safe (a keyspace with RF 1 or 2 there). A DC no keyspace replicates to
    may lose all its nodes (its size). Accepts raw ``system_schema.keyspaces`` rows.
    """
    return _safe_limits(normalise_keyspaces(keyspaces), _ring(ring, []))


def _safe_limits(keyspaces: list[dict], members: list[_Node]) -> dict[str, int]:
    sizes = _dc_sizes(members)
    limits = {}
    for dc, size in sizes.items():
        rfs = [_rf_in_dc(k, dc, sizes) for k in keyspaces]
        limits[dc] = min([_quorum_tolerance(r) for r in rfs if r > 0], default=size)
    return limits


def _cluster_limit(keyspaces: list[dict]) -> int | None:
    """The cap on a whole batch from SimpleStrategy keyspaces, whose replicas cross DCs."""
    rfs = [k["replication"]["replication_factor"] for k in keyspaces if k["class"] == SIMPLE]
    rfs = [r for r in rfs if r > 0]
    return max(1, min(_quorum_tolerance(r) for r in rfs)) if rfs else None


def rack_parallel_allowed(keyspaces, ring) -> tuple[bool, str]:
    """Whether a whole rack may go down at once: every replicated keyspace uses
    NetworkTopologyStrategy and every DC it replicates to has at least RF racks, so the replicas of
    a range sit on distinct racks. The string says why not (empty when allowed).
    """
    reason = _rack_parallel_refusal(normalise_keyspaces(keyspaces), _ring(ring, []))
    return not reason, reason


def _rack_parallel_refusal(keyspaces: list[dict], members: list[_Node]) -> str:
    if not keyspaces:
        return (
            "no keyspaces given, so nothing shows that replicas sit on distinct racks. Fix: pass "
            "keyspaces (rows of system_schema.keyspaces)"
        )
    racks = _racks(members)
    for keyspace in keyspaces:
        reason = _keyspace_rack_refusal(keyspace, racks)
        if reason:
            return reason
    return ""


def _keyspace_rack_refusal(keyspace: dict, racks: dict[str, set[str]]) -> str:
    name, cls = keyspace["name"], keyspace["class"]
    if cls != NTS:
        return (
            f"keyspace {name} uses {cls}, which places replicas without regard to racks, so one "
            f"rack may hold several replicas of a range. Fix: ALTER KEYSPACE {name} to "
            "NetworkTopologyStrategy, or roll out without parallel_racks"
        )
    for dc, rf in keyspace["replication"].items():
        count = len(racks.get(dc, ()))
        if count < rf:
            return (
                f"keyspace {name} has RF {rf} in {dc} but {dc} has {count} rack(s), so a rack "
                "holds several replicas of some ranges. Fix: roll out without parallel_racks"
            )
    return ""


# --- plan ---------------------------------------------------------------------------------------


def plan(
    nodes,
    *,
    keyspaces=(),
    ring=None,
    canary: int = 1,
    max_unavailable: int = 1,
    parallel_racks: bool = False,
) -> dict:
    """Order the targets into batches.

    Returns ``{"order", "batches", "canary", "per_dc_limit", "cluster_limit", "mode",
    "warnings"}``. Canaries (``canary`` nodes, taken round-robin across DCs) go first, one per
    batch. Then, in ``serial`` mode, a batch holds at most ``min(max_unavailable,
    per_dc_limit[dc])`` nodes of each DC and at most ``max_unavailable`` (and ``cluster_limit``,
    set by SimpleStrategy keyspaces) nodes in all. ``per_dc_limit`` is the QUORUM-safe count of
    ``max_safe_unavailable`` floored at 1 (with a warning), or 1 when no keyspaces are given.
    With ``parallel_racks`` each batch is every remaining target of one rack of one DC;
    ``max_unavailable`` and ``per_dc_limit`` do not apply there (the rack is the unit).
    """
    _check_params(canary, max_unavailable, parallel_racks)
    targets = _targets(nodes)
    members = _ring(ring, targets)
    keyspaces = normalise_keyspaces(keyspaces)
    target_dcs = sorted({n.dc for n in targets})
    warnings: list[str] = []

    if keyspaces:
        safe = _safe_limits(keyspaces, members)
        per_dc_limit = {dc: max(1, safe[dc]) for dc in target_dcs}
        cluster_limit = _cluster_limit(keyspaces)
        warnings += _low_rf_warnings(keyspaces, target_dcs, _dc_sizes(members))
    else:
        # Without replication facts nothing beyond one node at a time is provably safe.
        per_dc_limit = dict.fromkeys(target_dcs, 1)
        cluster_limit = 1
        warnings.append(
            "no keyspaces given: replication unknown, so one node at a time. Fix: pass keyspaces "
            "(rows of system_schema.keyspaces) to allow more"
        )

    order = sorted(targets, key=_Node.sort_key)
    canaries = _pick_canaries(order, canary)
    picked = set(canaries)
    rest = [n for n in order if n not in picked]
    if parallel_racks:
        reason = _rack_parallel_refusal(keyspaces, members)
        if reason:
            raise SaltInvocationError(f"parallel_racks refused: {reason}")
        if max_unavailable > 1:
            warnings.append(
                f"parallel_racks: max_unavailable={max_unavailable} is ignored; "
                "each batch is a whole rack"
            )
        mode, batches = "rack_parallel", _rack_batches(rest)
    else:
        spans_dcs = len(target_dcs) > 1 and cluster_limit is not None
        if keyspaces and spans_dcs and cluster_limit < max_unavailable:
            warnings.append(
                f"SimpleStrategy keyspaces place replicas across DCs: at most {cluster_limit} "
                "node(s) per batch in all DCs together"
            )
        total = min(max_unavailable, cluster_limit or max_unavailable)
        caps = {dc: min(max_unavailable, limit) for dc, limit in per_dc_limit.items()}
        mode, batches = "serial", _serial_batches(rest, caps, total)

    return {
        "order": [n.id for n in order],
        "batches": [[n.id] for n in canaries] + [[n.id for n in batch] for batch in batches],
        "canary": [n.id for n in canaries],
        "per_dc_limit": per_dc_limit,
        "cluster_limit": cluster_limit,
        "mode": mode,
        "warnings": warnings,
    }


def _check_params(canary, max_unavailable, parallel_racks) -> None:
    # bool is an int in Python; canary=True is almost certainly a mistake.
    if isinstance(canary, bool) or not isinstance(canary, int) or canary < 0:
        raise SaltInvocationError(f"canary={canary!r}: must be a whole number >= 0. Fix: e.g. 1")
    if isinstance(max_unavailable, bool) or not isinstance(max_unavailable, int):
        raise SaltInvocationError(
            f"max_unavailable={max_unavailable!r}: must be a whole number >= 1. Fix: e.g. 1"
        )
    if max_unavailable < 1:
        raise SaltInvocationError(
            f"max_unavailable={max_unavailable}: must be >= 1, or the rollout never starts. Fix: 1"
        )
    if not isinstance(parallel_racks, bool):
        raise SaltInvocationError(
            f"parallel_racks={parallel_racks!r}: must be true or false. Fix: pass a boolean"
        )


def _targets(nodes) -> list[_Node]:
    if not nodes:
        raise SaltInvocationError(
            "no targets to plan. Fix: check the targeting and certdeploy:targets:cassandra pillar"
        )
    targets: list[_Node] = []
    by_id: dict[str, _Node] = {}
    by_address: dict[str, _Node] = {}
    for row in nodes:
        if isinstance(row, dict) and (not isinstance(row.get("id"), str) or not row["id"]):
            raise SaltInvocationError(f"target {row!r} has no id. Fix: give each target its id")
        node = _node(row, where="nodes")
        if node.id in by_id:
            raise SaltInvocationError(
                f"{node.id}: listed twice among the targets. Fix: list each target once"
            )
        if node.address in by_address:
            # Two targets on one address would restart the same JVM twice in one rollout.
            raise SaltInvocationError(
                f"{node.id}: address {node.address} is also {by_address[node.address].id}'s. "
                "Fix: give each target its own listen address"
            )
        by_id[node.id] = by_address[node.address] = node
        targets.append(node)
    return targets


def _low_rf_warnings(keyspaces: list[dict], dcs: list[str], sizes: dict[str, int]) -> list[str]:
    """One warning per keyspace and target DC whose ranges lose QUORUM with one replica down."""
    warnings = []
    for keyspace in keyspaces:
        # SimpleStrategy has one RF for the whole ring; say so once, not once per DC.
        places = ["every DC (SimpleStrategy)"] if keyspace["class"] == SIMPLE else dcs
        for place in places:
            rf = _rf_in_dc(keyspace, place, sizes)
            if rf in (1, 2):
                warnings.append(_low_rf_warning(keyspace["name"], rf, place))
    return warnings


def _low_rf_warning(name: str, rf: int, place: str) -> str:
    effect = (
        "its ranges are unavailable while their only replica is down"
        if rf == 1
        else "QUORUM requests to its ranges fail while a replica is down"
    )
    return f"keyspace {name} has RF {rf} in {place}: {effect}; a reload-only rollout keeps nodes up"


def _pick_canaries(order: list[_Node], count: int) -> list[_Node]:
    """The first ``count`` nodes, taking the next node of each DC in turn (DCs in order)."""
    by_dc: dict[str, list[_Node]] = {}
    for node in order:
        by_dc.setdefault(node.dc, []).append(node)
    picked: list[_Node] = []
    depth = 0
    while len(picked) < min(count, len(order)):
        for dc in sorted(by_dc):
            if depth < len(by_dc[dc]) and len(picked) < count:
                picked.append(by_dc[dc][depth])
        depth += 1
    return picked


def _serial_batches(rest: list[_Node], caps: dict[str, int], total: int) -> list[list[_Node]]:
    """Greedy in plan order: fill a batch up to each DC's cap and the total cap, then the next.

    ``rest`` is sorted by DC first, so the greedy scan takes each DC's next nodes in turn; one
    queue per DC gives the same batches in O(n) rather than a rescan of ``rest`` per batch
    (10,000 nodes one at a time would be 10^8 steps)."""
    queues: dict[str, deque[_Node]] = {}
    for node in rest:
        queues.setdefault(node.dc, deque()).append(node)
    batches = []
    while any(queues.values()):
        batch: list[_Node] = []
        for dc, queue in queues.items():  # insertion order is plan order
            take = min(caps[dc], total - len(batch), len(queue))
            batch += [queue.popleft() for _ in range(take)]
        batches.append(batch)
    return batches


def _rack_batches(rest: list[_Node]) -> list[list[_Node]]:
    """One batch per (dc, rack), in plan order (``rest`` is already sorted by dc, rack)."""
    batches: dict[tuple[str, str], list[_Node]] = {}
    for node in rest:
        batches.setdefault((node.dc, node.rack), []).append(node)
    return list(batches.values())


def next_batch(plan: dict, done) -> list[str] | None:
    """The not-yet-done ids of the first batch that has any, or None when all are done."""
    done = set(done or ())
    for batch in plan["batches"]:
        pending = [node for node in batch if node not in done]
        if pending:
            return pending
    return None
