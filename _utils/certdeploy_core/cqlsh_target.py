"""The ``cqlsh`` profile's target: cqlsh with a client certificate, for an operator account or
a scheduled job. Its PEM files plus the ``[connection]``, ``[ssl]`` and ``[auth_provider]``
sections of its ``cqlshrc``; cqlsh reads them on every run, so there is nothing to activate.

Pillar (``certdeploy:targets:<name>``, documented in ``pillar/certdeploy_cqlsh_example.sls``)::

    profile: cqlsh
    app: ops
    keystore: /root/.cassandra/ops.pem     # chain + key, 0600: [ssl] usercert and userkey
    truststore: /root/.cassandra/ca.pem    # [ssl] certfile
    cqlshrc: /root/.cassandra/cqlshrc      # the sections certdeploy owns; the rest is kept
    cqlsh: [/usr/bin/cqlsh]                # what verification runs, for real
    identity: spiffe://prod/ops/{generation}
    role: ops_{generation}
    contact_points: ['10.0.0.11:9042', ...]
"""

from __future__ import annotations

from dataclasses import dataclass

from . import files as certdeploy_files
from .client_target import ClientTarget, argv, common


@dataclass(frozen=True)
class CqlshTarget(ClientTarget):
    cqlshrc: str = ""
    cqlsh: tuple[str, ...] = ("cqlsh",)
    config_file: str = ""  # the cqlshrc: backed up, restored and diffed with the stores

    def managed_files(self) -> dict:
        return {**super().managed_files(), "config": self.cqlshrc}


def load(name: str, profile: str, data: dict, node: str, bad) -> CqlshTarget:
    if data["store_type"] != "pem":
        raise bad("store_type", f"{data['store_type']!r}: cqlsh reads PEM files", "use pem")
    if not data.get("cqlshrc"):
        raise bad("cqlshrc", "missing", "give the cqlshrc path cqlsh reads (e.g. ~/.cassandra)")
    certdeploy_files.safe_path(data["cqlshrc"], f"certdeploy:targets:{name}:cqlshrc", node)
    cqlsh = argv(data.get("cqlsh"), "cqlsh", bad)
    if not cqlsh:
        raise bad("cqlsh", "empty", "give the cqlsh argv, e.g. [/usr/bin/cqlsh]")
    return CqlshTarget(
        **common(name, profile, data, node, bad),
        method="none",
        reload=(),
        restart=(),
        watch_seconds=0.0,
        cwd=None,
        health=(),
        pid_command=(),
        cqlshrc=data["cqlshrc"],
        cqlsh=cqlsh,
        config_file=data["cqlshrc"],
    )
