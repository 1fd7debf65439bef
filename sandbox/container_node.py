"""One Cassandra 5.0 node in a podman container: ``cass4c``, a single-node cluster of its own
(``certdeploy-container``) on 127.0.0.4 (host network: 9042 and 7000 are published there),
JMX 7499 inside. Client and internode TLS from the rig's CA; clients must present a
certificate (mTLS at the TLS layer; AllowAllAuthenticator, so no role bootstrap and no second
start). It runs as the image's ``cassandra`` user (uid 998).

What the container sees (host -> container):

==============================  =======================  =====
``nodes/cass4/conf``            ``/etc/cassandra/conf``  ro: yaml (stores named by container
                                                         paths), rackdc, logback
``nodes/cass4/tls``             ``/etc/cassandra/tls``   ro: keystore.p12, truststore.p12
``nodes/cass4/var``             ``/var/lib/cassandra``   rw: data, commitlog, logs, tmp
``nodes/cass4/bin``             ``/opt/cassandra/bin``   ro: ``nodetool`` (JMX 7499)
``.cache/cassandra/lib``        ``/opt/cassandra/lib``   ro: the jars
the JVM, ``/etc/java-17-...``   the same paths           ro
==============================  =======================  =====

Its ``container`` target (:meth:`ContainerNode.target`) is the pillar an operator would write:
certdeploy writes the stores into ``nodes/cass4/tls`` as uid 998, mode 0600, and activates
with ``podman exec cass4c /opt/cassandra/bin/nodetool reloadssl``. It starts in about a minute
on this 2-core box, so it runs in ``make bench`` (``tests/integration/test_container_node.py``,
marked ``bench``), not in the suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from sandbox import containers, pki
from sandbox.cassandra import (
    ALLOW_ALL,
    JAVA17,
    LIB_DIR,
    LOGBACK,
    QUIET_LOGBACK,
    Node,
    NodeError,
    daemon_argv,
    nodetool_argv,
)
from sandbox.rig import Rig, write_private

N = 4
NAME = "cass4c"
CLUSTER = "certdeploy-container"
UID = containers.USERS["cassandra"]
INSIDE = {
    "conf": "/etc/cassandra/conf",
    "tls": "/etc/cassandra/tls",
    "var": "/var/lib/cassandra",
    "bin": "/opt/cassandra/bin",
    "lib": "/opt/cassandra/lib",
}
STORES = {"keystore": "keystore.p12", "truststore": "truststore.p12"}
VAR_DIRS = ("data", "commitlog", "hints", "saved_caches", "cdc_raw", "logs", "tmp")
JVM_HOME = JAVA17.parent.parent


class ContainerNode:
    def __init__(self, rig: Rig):
        self.rig = rig
        self.node = Node(rig.root, N, 1)
        self.name, self.address, self.jmx_port = NAME, self.node.address, self.node.jmx_port
        home = self.node.home
        self.dirs = {k: home / k for k in ("conf", "tls", "var", "bin")}
        self.log_path = self.dirs["var"] / "logs" / "system.log"

    def on_host(self, store: str) -> Path:
        return self.dirs["tls"] / STORES[store]

    # ---------------------------------------------------------------------- files

    def prepare(self) -> str:
        """Stores, yaml, logback and the nodetool script, owned by uid 998. Returns the leaf's
        fingerprint."""
        for path in self.dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        for sub in VAR_DIRS:
            (self.dirs["var"] / sub).mkdir(exist_ok=True)
        leaf = self.rig.issuing_ca().issue_node(N)
        passwords = self.rig.store_passwords()
        self._private(
            self.on_host("keystore"), pki.keystore_bytes(leaf, "pkcs12", passwords["keystore"])
        )
        trust = pki.truststore_bytes([self.rig.root_ca().cert], "pkcs12", passwords["truststore"])
        self._private(self.on_host("truststore"), trust)
        tls = self.rig.tls_sections(self.node)
        for section in tls.values():
            section.update({k: f"{INSIDE['tls']}/{name}" for k, name in STORES.items()})
        yaml_text = self.node.config_text(
            tls,
            ALLOW_ALL,
            cluster_name=CLUSTER,
            seeds=f"{self.address}:7000",
            token=0,
            var=INSIDE["var"],
        )
        conf = self.dirs["conf"]
        self._private(conf / "cassandra.yaml", yaml_text.encode())
        files = {
            "cassandra-rackdc.properties": "dc=dc1\nrack=rack1\nprefer_local=true\n",
            "logback.xml": LOGBACK.format(logdir=f"{INSIDE['var']}/logs"),
            "logback-tools.xml": QUIET_LOGBACK,
        }
        for name, text in files.items():
            (conf / name).write_text(text)
        script = self.dirs["bin"] / "nodetool"
        argv = nodetool_argv(JAVA17, INSIDE["conf"], INSIDE["lib"], self.jmx_port)
        script.write_text("#!/bin/sh\nexec " + " ".join(f"'{a}'" for a in argv) + ' "$@"\n')
        script.chmod(0o755)
        for path in (*self.dirs.values(), *(self.dirs["var"] / s for s in VAR_DIRS)):
            os.chown(path, UID, UID)
        for path in (self.dirs["conf"], self.dirs["tls"], self.dirs["var"]):
            path.chmod(0o700)
        self.dirs["bin"].chmod(0o755)
        return leaf.fingerprint

    @staticmethod
    def _private(path: Path, data: bytes) -> None:
        write_private(path, data)
        os.chown(path, UID, UID)

    # ---------------------------------------------------------------------- container

    def mounts(self) -> list[str]:
        pairs = [(self.dirs[k], INSIDE[k], "ro") for k in ("conf", "tls", "bin")]
        pairs += [(self.dirs["var"], INSIDE["var"], "rw"), (LIB_DIR, INSIDE["lib"], "ro")]
        pairs += [(JVM_HOME, JVM_HOME, "ro")]
        pairs += [(p, p, "ro") for p in (Path("/etc/java-17-openjdk"),) if p.exists()]
        out = []
        for host, inside, mode in pairs:
            out += ["-v", f"{host}:{inside}:{mode}"]
        return out

    def start(self, timeout: float = 300, log=print) -> float:
        """Run the container and wait until CQL listens on 127.0.0.4:9042. Seconds taken."""
        started = time.monotonic()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = daemon_argv(JAVA17, INSIDE["var"], INSIDE["conf"], INSIDE["lib"], self.jmx_port)
        args = ["--user", f"{UID}:{UID}", "-w", INSIDE["var"], *self.mounts()]
        containers.run(self.rig.root, NAME, args, argv, log)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise NodeError(f"{NAME}: the container exited; {self.logs()}")
            if self._listening() and b"Starting listening for CQL clients" in self._log(offset):
                took = time.monotonic() - started
                log(f"{NAME} (container) up on {self.address}:9042 in {took:.1f}s")
                return took
            time.sleep(1)
        raise NodeError(f"{NAME}: CQL not up after {timeout:.0f}s; {self.logs()}")

    def running(self) -> bool:
        res = self.engine("inspect", "--format", "{{.State.Running}}", NAME)
        return res.returncode == 0 and res.stdout.strip() == "true"

    def stop(self) -> None:
        self.engine("rm", "-f", "-t", "30", "--ignore", NAME)

    def engine(self, *args, timeout=120) -> subprocess.CompletedProcess:
        argv = [*containers.engine(self.rig.root), *map(str, args)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def nodetool(self, *args, timeout=120) -> subprocess.CompletedProcess:
        return self.engine("exec", NAME, f"{INSIDE['bin']}/nodetool", *args, timeout=timeout)

    def inside(self) -> dict:
        """Owner, group and mode of the stores as the container sees them."""
        paths = [f"{INSIDE['tls']}/{name}" for name in STORES.values()]
        res = self.engine("exec", NAME, "stat", "-c", "%n %u %g %a", *paths)
        return {line.split()[0]: tuple(line.split()[1:]) for line in res.stdout.splitlines()}

    def logs(self, lines: int = 15) -> str:
        res = self.engine("logs", "--tail", str(lines), NAME)
        tail = self._log(0).decode(errors="replace").splitlines()[-lines:]
        return f"podman logs: {res.stdout[-1500:]}{res.stderr[-500:]}\nsystem.log: " + "\n".join(
            tail
        )

    def _log(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read()
        except OSError:
            return b""

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.address, 9042), timeout=1):
                return True
        except OSError:
            return False

    # ---------------------------------------------------------------------- pillar

    def target(self, **overrides) -> dict:
        """Its ``certdeploy:targets:cass4c`` pillar (on minion cass1: the same host)."""
        passwords = self.rig.store_passwords()
        return {
            "profile": "container",
            "runs": "cassandra",
            "engine": containers.engine(self.rig.root),
            "container": NAME,
            "node": NAME,
            "hostname": self.node.name,
            "host_dir": str(self.dirs["tls"]),
            "container_dir": INSIDE["tls"],
            **STORES,
            "store_type": "pkcs12",
            "keystore_password": passwords["keystore"],
            "truststore_password": passwords["truststore"],
            "uid": UID,
            "gid": UID,
            "mode": "0600",
            "config_file": str(self.dirs["conf"] / "cassandra.yaml"),
            "listen_address": self.address,
            "rpc_address": self.address,
            "dc": "dc1",
            "rack": "rack1",
            "client_port": 9042,
            "internode_port": 7000,
            "jmx_port": self.jmx_port,
            "client_auth": True,
            "nodetool": [f"{INSIDE['bin']}/nodetool"],
            "activate": {"method": "exec", "restart_grace": 30},
            "verify_client": {"cert": str(self.rig.client_cert), "key": str(self.rig.client_key)},
            "backup_dir": str(self.node.home / "certdeploy-backups"),
            "start_timeout": 300,
            **overrides,
        }
