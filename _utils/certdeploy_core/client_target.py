"""The ``client`` profile's target: a client application's certificate files, the identity its
leaf must carry, how it is activated and how the server side proves it moved.

Pillar (``certdeploy:targets:<name>``, documented in ``pillar/certdeploy_client_example.sls``)::

    profile: client
    app: orders
    store_type: pem                  # pem: keystore = chain + key in one 0600 file; pkcs12
    keystore: /etc/orders/tls/client.pem
    truststore: /etc/orders/tls/ca.pem
    identity: spiffe://prod/orders/{generation}    # URI SAN of the leaf (clientAuth EKU too)
    role: orders_{generation}        # the MutualTlsAuthenticator role of that identity
    contact_points: ['10.0.0.11:9042', ...]
    activate: {method: reload, reload: [systemctl, kill, -s, HUP, orders], restart: [...]}
    health: [/usr/local/bin/orders-health]
    pid_command: [systemctl, show, -p, MainPID, --value, orders]  # optional: prints the app's
                                     # pid(s); verification then counts only that process's
                                     # connections (needed when instances share the roles)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import pillar_checks

ACTIVATION_METHODS = ("reload", "restart", "watch")


@dataclass(frozen=True)
class ClientTarget:
    name: str
    profile: str
    node: str  # the minion the app runs on: names it in errors, records and backups
    app: str
    store_type: str
    keystore: str
    truststore: str
    owner: str
    group: str
    mode: int
    identity: str
    role: str
    contact_points: tuple[tuple[str, int], ...]
    method: str  # the default activation: reload | restart | watch
    reload: tuple[str, ...]
    restart: tuple[str, ...]
    watch_seconds: float
    cwd: str | None
    health: tuple[str, ...]
    pid_command: tuple[str, ...]  # prints the app's pid(s): scopes verification to its sockets
    verify_client: dict  # the identity that reads system_views.clients (not the app's own)
    verify_timeout: float
    backup_dir: str
    backup_keep: int
    min_days_remaining: int
    drill_fail_step: str | None
    retire_old: bool = False  # after success, DROP IDENTITY the replaced leaf's (retire.py)
    keystore_password: str | None = field(default=None, repr=False)
    truststore_password: str | None = field(default=None, repr=False)
    config_file: None = None  # nothing to configure: the app reads the files it always read

    def names(self) -> dict:
        return {}

    def managed_files(self) -> dict:
        return {"keystore": self.keystore, "truststore": self.truststore}

    def hosts(self) -> list[str]:
        return [host for host, _ in self.contact_points]

    def role_for(self, generation: str) -> str:
        return self.role.replace("{generation}", generation)

    def public(self) -> dict:
        """Everything but the passwords, for returns and events."""
        return pillar_checks.public(self)


def argv(value, key, bad) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(a, (str, int)) for a in value):
        raise bad(
            key, f"{value!r} is not an argv list", "give a list, e.g. [systemctl, restart, app]"
        )
    return tuple(str(a) for a in value)


def _flag(value, key, bad) -> bool:
    if value in (None, False, True):
        return bool(value)
    raise bad(key, f"{value!r} is not true or false", "use retire_old: true (or leave it out)")


def _contact_points(value, bad) -> tuple[tuple[str, int], ...]:
    points = []
    for item in value or ():
        host, _, port = str(item).rpartition(":") if ":" in str(item) else (str(item), "", "9042")
        try:
            points.append((host, int(port)))
        except ValueError:
            raise bad("contact_points", f"{item!r} has no numeric port", "use host:9042") from None
    if not points:
        raise bad("contact_points", "empty", "list the nodes the app connects to (host:port)")
    return tuple(points)


def common(name: str, profile: str, data: dict, node: str, bad) -> dict:
    """The fields every client-side profile (``client``, ``cqlsh``) loads the same way."""
    paths = ("keystore", "truststore", "backup_dir")
    mode = pillar_checks.stores_and_mode(name, data, node, bad, paths)
    if "{generation}" in data["role"] and "{generation}" not in data["identity"]:
        raise bad("role", "uses {generation} but identity does not", "template both, or neither")
    verify_client = pillar_checks.verify_client(data, node)
    if not verify_client.get("cert"):
        raise bad(
            "verify_client",
            "missing (the identity that reads system_views.clients)",
            "give verify_client: {cert: ..., key: ...} of a role that is not the app's",
        )
    return dict(
        name=name,
        profile=profile,
        node=node,
        app=data["app"],
        store_type=data["store_type"],
        keystore=data["keystore"],
        truststore=data["truststore"],
        owner=data["owner"],
        group=data["group"],
        mode=mode,
        identity=data["identity"],
        role=data["role"],
        contact_points=_contact_points(data["contact_points"], bad),
        verify_client=verify_client,
        verify_timeout=float(data["verify_timeout"]),
        backup_dir=data["backup_dir"],
        backup_keep=int(data["backup_keep"]),
        min_days_remaining=int(data["min_days_remaining"]),
        drill_fail_step=pillar_checks.drill(data.get("drill_fail_step"), bad),
        retire_old=_flag(data.get("retire_old"), "retire_old", bad),
        keystore_password=data.get("keystore_password"),
        truststore_password=data.get("truststore_password"),
    )


def load(name: str, profile: str, data: dict, node: str, bad) -> ClientTarget:
    fields = common(name, profile, data, node, bad)
    activate = data.get("activate") or {}
    method = activate.get("method", "restart")
    if method not in ACTIVATION_METHODS:
        raise bad("activate:method", f"{method!r} is unknown", f"use one of {ACTIVATION_METHODS}")
    reload, restart = (argv(activate.get(k), f"activate:{k}", bad) for k in ("reload", "restart"))
    if not restart:
        raise bad("activate:restart", "missing", "give the argv that restarts the app")
    if method == "reload" and not reload:
        raise bad("activate:reload", "missing for method reload", "give the argv that signals it")
    return ClientTarget(
        **fields,
        method=method,
        reload=reload,
        restart=restart,
        watch_seconds=float(activate.get("watch_seconds", 40)),
        cwd=activate.get("cwd"),
        health=argv(data.get("health"), "health", bad),
        pid_command=argv(data.get("pid_command"), "pid_command", bad),
    )
