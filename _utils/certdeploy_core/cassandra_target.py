"""The ``cassandra`` profile's target: a Cassandra node's addresses, ports, stores, files and
service control, built from ``certdeploy:targets:<name>`` once the generic loader
(:func:`target.load_target`) has merged the profile's defaults and checked its required keys.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from . import pillar_checks

PEM_FACTORY = "org.apache.cassandra.security.PEMBasedSslContextFactory"


@dataclass(frozen=True)
class Control:
    """How to stop/start the service and reach nodetool. Argv lists, or a service name."""

    start: tuple[str, ...] | None = None
    stop: tuple[str, ...] | None = None
    service: str = "cassandra"
    nodetool: tuple[str, ...] = ()
    # The reload: ``nodetool reloadssl`` unless an argv makes the same JMX call some other
    # way (contrib/reloadssl: one JMX call without nodetool's ~100-jar JVM).
    reloadssl: tuple[str, ...] = ()
    cwd: str | None = None


@dataclass(frozen=True)
class Target:
    name: str
    profile: str
    node: str
    listen_address: str
    rpc_address: str
    hostname: str
    dc: str | None
    rack: str | None
    config_file: str
    client_port: int
    internode_port: int
    jmx_port: int
    store_type: str
    keystore: str
    truststore: str
    owner: str
    group: str
    mode: int
    client_auth: bool
    backup_dir: str
    backup_keep: int
    min_days_remaining: int
    verify_timeout: float
    start_timeout: float
    drain_grace: float  # seconds between disablebinary and drain, for clients to move away
    control: Control
    verify_client: dict  # optional {"cert": path, "key": path}: the identity CQL checks use
    encryption_options: dict  # extra yaml keys to enforce: {"server": {...}, "client": {...}}
    # Game-day drill: "activate" or "verify" fails *after* really running, so operators can
    # rehearse the automatic rollback (which is entirely real) on a chosen node.
    drill_fail_step: str | None
    keystore_password: str | None = field(default=None, repr=False)
    truststore_password: str | None = field(default=None, repr=False)
    # (keystore, truststore) as the process sees them, when that is not where certdeploy
    # writes them: a container's bind-mounted directory (the ``container`` profile)
    store_paths_in_yaml: tuple[str, str] | None = None

    def names(self) -> dict:
        """Addresses and names the leaf's SANs must cover."""
        ips, dns = [], []
        for value in dict.fromkeys((self.listen_address, self.rpc_address, self.hostname)):
            try:
                ips.append(str(ipaddress.ip_address(value)))
            except ValueError:
                dns.append(value)
        return {"ips": ips, "dns": dns}

    def managed_files(self) -> dict:
        return {
            "keystore": self.keystore,
            "truststore": self.truststore,
            "config": self.config_file,
        }

    def desired_yaml(self) -> dict:
        """The encryption keys of cassandra.yaml that must match pillar."""
        keystore, truststore = self.store_paths_in_yaml or (self.keystore, self.truststore)
        common = {"keystore": keystore, "truststore": truststore}
        if self.store_type == "pem":
            common["ssl_context_factory"] = {"class_name": PEM_FACTORY}
        else:
            common.update(
                keystore_password=self.keystore_password,
                truststore_password=self.truststore_password,
                store_type="PKCS12",
            )
        extra = self.encryption_options
        return {
            "server_encryption_options": {**common, **extra.get("server", {})},
            "client_encryption_options": {
                **common,
                "enabled": True,
                "require_client_auth": self.client_auth,
                **extra.get("client", {}),
            },
        }

    def public(self) -> dict:
        """Everything but the passwords, for returns and events."""
        return pillar_checks.public(self)


def load(name: str, profile: str, data: dict, node: str, bad) -> Target:
    """A :class:`Target` from merged pillar ``data``; ``bad(key, problem, fix)`` builds the
    error that names this minion, the pillar key and the fix."""
    paths = ("config_file", "keystore", "truststore", "backup_dir")
    mode = pillar_checks.stores_and_mode(name, data, node, bad, paths)
    control = data.get("control") or {}
    nodetool = control.get("nodetool") or [
        "nodetool",
        "-h",
        "127.0.0.1",
        "-p",
        str(data["jmx_port"]),
    ]
    verify_client = pillar_checks.verify_client(data, node)
    return Target(
        name=name,
        profile=profile,
        node=node,
        listen_address=data["listen_address"],
        rpc_address=data.get("rpc_address") or data["listen_address"],
        hostname=data.get("hostname") or node,
        dc=data.get("dc"),
        rack=data.get("rack"),
        config_file=data["config_file"],
        client_port=int(data["client_port"]),
        internode_port=int(data["internode_port"]),
        jmx_port=int(data["jmx_port"]),
        store_type=data["store_type"],
        keystore=data["keystore"],
        truststore=data["truststore"],
        owner=data["owner"],
        group=data["group"],
        mode=mode,
        client_auth=bool(data["client_auth"]),
        backup_dir=data["backup_dir"],
        backup_keep=int(data["backup_keep"]),
        min_days_remaining=int(data["min_days_remaining"]),
        verify_timeout=float(data["verify_timeout"]),
        start_timeout=float(data["start_timeout"]),
        drain_grace=float(data["drain_grace"]),
        control=Control(
            start=tuple(control["start"]) if control.get("start") else None,
            stop=tuple(control["stop"]) if control.get("stop") else None,
            service=control.get("service", "cassandra"),
            nodetool=tuple(str(a) for a in nodetool),
            reloadssl=tuple(str(a) for a in control.get("reloadssl") or ()),
            cwd=control.get("cwd"),
        ),
        verify_client=verify_client,
        encryption_options=data.get("encryption_options") or {},
        drill_fail_step=pillar_checks.drill(data.get("drill_fail_step"), bad),
        keystore_password=data.get("keystore_password"),
        truststore_password=data.get("truststore_password"),
        store_paths_in_yaml=tuple(data["store_paths_in_yaml"])
        if data.get("store_paths_in_yaml")
        else None,
    )
