"""The whole local rig: test PKI, N Cassandra nodes with client + internode TLS, Salt daemons.

``python -m sandbox up|status|down`` and the pytest fixtures both drive this one class, so what a
person tries by hand is exactly what the tests run against.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _utils.certdeploy_core import cql, probe, ring
from sandbox import containers, pki, salt_rig, sshd
from sandbox.cassandra import ALLOW_ALL, MUTUAL_TLS, PASSWORD, Node, NodeError, check_runtime
from sandbox.hostfiles import group, port_busy, user, write_private  # noqa: F401 - re-exported

REPO = Path(__file__).resolve().parent.parent

DEFAULT_DIR = Path(os.environ.get("CERTDEPLOY_SANDBOX", "/tmp/cdsb"))
DEMO_KEYSPACE = "sandbox"
# The rig's own client identity (load generator, probes, certdeploy's CQL checks): under
# MutualTlsAuthenticator this SPIFFE URI SAN is the login, mapped to a superuser role.
RIG_IDENTITY = "spiffe://certdeploy-sandbox/certdeploy/rig"
RIG_ROLE = "certdeploy_rig"


@dataclass
class Rig:
    root: Path = DEFAULT_DIR
    nodes: int = 3
    store_type: str = "pkcs12"  # or "pem"
    client_auth: bool = True
    mtls_auth: bool = True  # MutualTlsAuthenticator: roles come from client certificates
    # Nodes served through salt-ssh (roster id ``<node>-ssh``) instead of a minion. With
    # ``ssh_beside`` (the test suite) their minions run too, and the roster is named only by
    # a second master config (``ssh_config_dir``), so ``cass*`` still means three minions.
    ssh: int = 0
    ssh_beside: bool = False
    timings: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mtls_auth and not self.client_auth:
            raise NodeError("--mtls-auth needs client auth: drop --no-client-auth")

    @property
    def authenticator(self):
        return MUTUAL_TLS if self.mtls_auth else ALLOW_ALL

    # ------------------------------------------------------------------ layout

    @property
    def descriptor_path(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def salt_config_dir(self) -> Path:
        return self.root / "salt" / "etc"

    def node(self, n: int) -> Node:
        return Node(self.root, n, self.nodes)

    def all_nodes(self) -> list[Node]:
        return [self.node(n) for n in range(1, self.nodes + 1)]

    def minion_ids(self) -> list[str]:
        agentless = set() if self.ssh_beside else {node.name for node in self.ssh_nodes()}
        return [node.name for node in self.all_nodes() if node.name not in agentless]

    def ssh_nodes(self) -> list[Node]:
        return [self.node(n) for n in (2, 3, 1, *range(4, self.nodes + 1))[: self.ssh]]

    @staticmethod
    def ssh_id(node: Node) -> str:
        return f"{node.name}-ssh"

    @property
    def ssh_config_dir(self) -> Path:
        """The master config that names the roster (salt-ssh, and salt-run over SSH ids)."""
        return self.root / "salt" / ("etc-ssh" if self.ssh_beside else "etc")

    def pillars(self) -> dict:
        """Every target id's pillar as ``up`` writes it: minions, then salt-ssh ids."""
        minions = self.minion_ids()
        pillars = {n.name: self.pillar_for(n) for n in self.all_nodes() if n.name in minions}
        pillars.update({self.ssh_id(n): self.ssh_pillar_for(n) for n in self.ssh_nodes()})
        return pillars

    def ssh_pillar_for(self, node: Node) -> dict:
        """An agentless node's pillar: its records live outside salt-ssh's thin dir."""
        data = self.pillar_for(node)
        data["certdeploy"]["state_dir"] = str(node.home / "certdeploy-state")
        return data

    def keystore_path(self, node: Node) -> Path:
        return node.tls_dir / ("keystore.pem" if self.store_type == "pem" else "keystore.p12")

    def truststore_path(self, node: Node) -> Path:
        return node.tls_dir / ("truststore.pem" if self.store_type == "pem" else "truststore.p12")

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca-bundle.pem"

    @property
    def client_cert(self) -> Path:
        return self.pki_dir / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.pki_dir / "client.key"

    def issued_copy(self, node: Node, store: str) -> Path:
        """The keystore or truststore ``up`` installed on ``node``, kept for ``reset``."""
        return self.pki_dir / "issued" / f"{node.name}.{store}"

    # ------------------------------------------------------------------ PKI

    def issue_pki(self) -> dict:
        """Root + intermediate CA, one leaf per node, one client cert. Returns node fingerprints."""
        root_ca = pki.CA.root()
        issuing = root_ca.intermediate()
        pki.save_ca(root_ca, self.pki_dir, "root-ca")
        pki.save_ca(issuing, self.pki_dir, "issuing-ca")
        self.ca_file.write_bytes(pki.cert_pem(root_ca.cert))
        client = issuing.issue(
            "certdeploy-client", dns=("certdeploy-client",), uris=(RIG_IDENTITY,)
        )
        self.client_cert.write_bytes(pki.cert_pem(client.cert, *client.chain))
        self.client_key.touch(mode=0o600)
        self.client_key.write_bytes(pki.key_pem(client.key))
        passwords = self.store_passwords()
        fingerprints = {}
        for node in self.all_nodes():
            leaf = issuing.issue_node(node.n)
            node.tls_dir.mkdir(parents=True, exist_ok=True)
            (self.pki_dir / "issued").mkdir(mode=0o700, exist_ok=True)
            stores = {
                "keystore": pki.keystore_bytes(leaf, self.store_type, passwords["keystore"]),
                "truststore": pki.truststore_bytes(
                    [root_ca.cert], self.store_type, passwords["truststore"]
                ),
            }
            for store, data in stores.items():
                write_private(self.issued_copy(node, store), data)
            write_private(self.keystore_path(node), stores["keystore"])
            write_private(self.truststore_path(node), stores["truststore"])
            fingerprints[node.name] = leaf.fingerprint
        return fingerprints

    def issuing_ca(self) -> pki.CA:
        return pki.load_ca(self.pki_dir, "issuing-ca")

    def root_ca(self) -> pki.CA:
        return pki.load_ca(self.pki_dir, "root-ca")

    def store_passwords(self) -> dict:
        path = self.pki_dir / "store-passwords.json"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(
                json.dumps({"keystore": secrets.token_hex(12), "truststore": secrets.token_hex(12)})
            )
        return json.loads(path.read_text())

    # ------------------------------------------------------------------ configs

    def tls_sections(self, node: Node) -> dict:
        passwords = self.store_passwords()
        common = {
            "keystore": str(self.keystore_path(node)),
            "truststore": str(self.truststore_path(node)),
        }
        if self.store_type == "pem":
            common["ssl_context_factory"] = {
                "class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory"
            }
        else:
            common.update(
                keystore_password=passwords["keystore"],
                truststore_password=passwords["truststore"],
                store_type="PKCS12",
            )
        return {
            "server_encryption_options": {
                "internode_encryption": "all",
                "optional": False,
                "legacy_ssl_storage_port_enabled": False,
                "require_client_auth": True,
                "require_endpoint_verification": False,
                **common,
            },
            "client_encryption_options": {
                "enabled": True,
                "optional": False,
                "require_client_auth": self.client_auth,
                **common,
            },
        }

    def pillar_for(self, node: Node) -> dict:
        """The node description a target gets: the ``cassandra`` target profile."""
        passwords = self.store_passwords()
        control_base = [sys.executable, "-m", "sandbox", "--dir", str(self.root), "node"]
        return {
            "certdeploy": {
                "cluster": "certdeploy-sandbox",
                "targets": {
                    "cassandra": {
                        "profile": "cassandra",
                        "node": node.name,
                        "hostname": node.name,
                        "listen_address": node.address,
                        "rpc_address": node.address,
                        "dc": node.dc,
                        "rack": node.rack,
                        "config_file": str(node.config_path),
                        "client_port": 9042,
                        "internode_port": 7000,
                        "jmx_port": node.jmx_port,
                        "store_type": self.store_type,
                        "keystore": str(self.keystore_path(node)),
                        "keystore_password": passwords["keystore"],
                        "truststore": str(self.truststore_path(node)),
                        "truststore_password": passwords["truststore"],
                        "owner": user(),
                        "group": group(),
                        "mode": "0600",
                        "client_auth": self.client_auth,
                        # CQL checks connect as the sandbox's client application would.
                        "verify_client": {
                            "cert": str(self.client_cert),
                            "key": str(self.client_key),
                        },
                        "min_days_remaining": 30,
                        "backup_dir": str(node.home / "certdeploy-backups"),
                        "backup_keep": 5,
                        "control": {
                            "start": [*control_base, "start", str(node.n)],
                            "stop": [*control_base, "stop", str(node.n)],
                            "nodetool": node.nodetool_command(),
                            "cwd": str(REPO),
                        },
                    }
                },
            }
        }

    def set_pillar(
        self,
        n: int,
        extra: dict | None = None,
        target: dict | None = None,
        targets=None,
        via_ssh: bool = False,
    ) -> None:
        """Rewrite node ``n``'s pillar: its target (with ``target`` keys overridden), more
        ``targets`` beside it (name -> pillar) and ``extra`` top-level certdeploy keys (e.g.
        ``{"bundle": {...}}``). Minions need ``saltutil.refresh_pillar`` afterwards.
        ``via_ssh`` rewrites its salt-ssh id's pillar instead (compiled on every call)."""
        node = self.node(n)
        data = self.ssh_pillar_for(node) if via_ssh else self.pillar_for(node)
        data["certdeploy"]["targets"]["cassandra"].update(target or {})
        data["certdeploy"]["targets"].update(targets or {})
        data["certdeploy"].update(extra or {})
        salt_rig.write_pillar_file(self.root, self.ssh_id(node) if via_ssh else node.name, data)

    # ------------------------------------------------------------------ lifecycle

    def up(self, log=print) -> dict:
        check_runtime()
        if self.descriptor_path.exists():
            raise NodeError(f"a sandbox is already up in {self.root}: run 'python -m sandbox down'")
        busy = [f"{n.address}:9042" for n in self.all_nodes() if port_busy(n.address, 9042)]
        if busy:
            raise NodeError(
                f"{busy} already in use: another sandbox is running. Stop it with "
                "'python -m sandbox --dir <its dir> down' (tests: or set CERTDEPLOY_TEST_RIG=<dir>)"
            )
        t0 = time.monotonic()
        self._clear_leftovers()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        fingerprints = self.issue_pki()
        for node in self.all_nodes():  # roles and identities are made in a password phase
            node.write_config(self.tls_sections(node), PASSWORD if self.mtls_auth else ALLOW_ALL)
        descriptor = self._descriptor(fingerprints, salt={})
        self._write_descriptor(descriptor)  # early, so `down` works even if startup fails
        for node in self.all_nodes():
            seconds = node.start()
            self.timings[f"start_{node.name}"] = round(seconds, 1)
            log(f"{node.name} up on {node.address}:9042 in {seconds:.1f}s")
        if self.mtls_auth:
            self.replicate_system_keyspaces(password=("cassandra", "cassandra"))
            self.grant_identity(RIG_IDENTITY, RIG_ROLE, password=("cassandra", "cassandra"))
            self._restart_with(self.authenticator, log)
        else:
            self.replicate_system_keyspaces()
        self.timings["cassandra_up"] = round(time.monotonic() - t0, 1)
        pillars = {
            n.name: self.pillar_for(n) for n in self.all_nodes() if n.name in self.minion_ids()
        }
        pillars.update({self.ssh_id(n): self.ssh_pillar_for(n) for n in self.ssh_nodes()})
        ssh_facts = (
            sshd.setup(self.root, {self.ssh_id(n): n.address for n in self.ssh_nodes()})
            if self.ssh
            else None
        )
        ports = salt_rig.write_configs(
            self.root,
            self.minion_ids(),
            pillars,
            ssh=sshd.master_settings(self.root) if self.ssh else None,
            ssh_dir=self.ssh_config_dir if self.ssh_beside else None,
        )
        t1 = time.monotonic()
        salt = {**ports, "master_pid": salt_rig.start_master(self.root), "minion_pids": {}}
        descriptor["salt"] = salt
        self._write_descriptor(descriptor)
        if ssh_facts:
            descriptor["ssh"] = {
                **ssh_facts,
                "beside": self.ssh_beside,
                "config_dir": str(self.ssh_config_dir),
                "pid": sshd.start(self.root),
            }
            self._write_descriptor(descriptor)
        for mid in self.minion_ids():
            salt["minion_pids"][mid] = salt_rig.start_minion(self.root, mid)
            self._write_descriptor(descriptor)
        salt_rig.wait_for_minions(self.root, self.minion_ids())
        salt_rig.sync_extension(self.root, self.minion_ids())
        if ssh_facts:
            self.timings["ssh_first_call"] = round(self.wait_for_ssh(), 1)
        self.timings["salt_up"] = round(time.monotonic() - t1, 1)
        self.timings["sandbox_up"] = round(time.monotonic() - t0, 1)
        descriptor["timings"] = dict(self.timings)
        self._write_descriptor(descriptor)
        took = self.timings["sandbox_up"]
        agentless = f" + {self.ssh} over salt-ssh" if self.ssh else ""
        log(f"salt master + {len(self.minion_ids())} minions{agentless}; sandbox up in {took}s")
        return descriptor

    def wait_for_ssh(self, timeout: float = 120) -> float:
        """The first salt-ssh call to every roster id (it deploys the thin). Seconds taken."""
        ids = [self.ssh_id(n) for n in self.ssh_nodes()]
        return sshd.first_call(self.root, self.ssh_config_dir, ids, timeout)

    def _restart_with(self, authenticator, log) -> None:
        """Stop every node, rewrite its yaml with ``authenticator``, start them again."""
        t0 = time.monotonic()
        stopping = [node.signal_stop() for node in self.all_nodes()]  # drain all at once
        for pid in stopping:
            if pid:
                Node.wait_stopped(pid)
        launched = []
        for node in self.all_nodes():  # side by side: the cluster exists, every node a seed
            node.write_config(self.tls_sections(node), authenticator)
            launched.append((node, *node.launch()))
        for node, proc, offset in launched:
            node.wait_up(proc, offset, 240)
        self.wait_ring_healthy()
        self.timings["mtls_auth_restart"] = round(time.monotonic() - t0, 1)
        log(f"nodes restarted with MutualTlsAuthenticator in {self.timings['mtls_auth_restart']}s")

    def _clear_leftovers(self) -> None:
        """A previous sandbox's directory (after `down`) holds old cluster data and Salt keys
        that would confuse a new rig: start from scratch, but never delete a foreign dir."""
        if not self.root.exists() or not any(self.root.iterdir()):
            return
        if not {"nodes", "pki", "salt"} & {p.name for p in self.root.iterdir()}:
            raise NodeError(f"{self.root} exists and is not a sandbox: choose another --dir")
        import shutil

        shutil.rmtree(self.root)

    def down(self, log=print) -> None:
        # Tolerate a half-started rig: stop whatever the descriptor and pid files name.
        descriptor = self.descriptor() if self.descriptor_path.exists() else {}
        salt = descriptor.get("salt", {})
        daemons = [*salt.get("minion_pids", {}).values(), salt.get("master_pid")]
        salt_rig.stop_groups([pid for pid in daemons if pid])
        if descriptor.get("ssh"):
            sshd.stop(self.root, descriptor["ssh"].get("pid"))
            log("sshd stopped")
        containers.remove_all(self.root, log)
        stopping = {node.name: node.signal_stop() for node in self.all_nodes()}
        for name, pid in stopping.items():
            if pid:
                Node.wait_stopped(pid)
                log(f"{name} stopped")
        self.descriptor_path.unlink(missing_ok=True)
        log(f"sandbox in {self.root} is down")

    def descriptor(self) -> dict:
        if not self.descriptor_path.exists():
            raise NodeError(f"no sandbox descriptor at {self.descriptor_path}: is it up?")
        return json.loads(self.descriptor_path.read_text())

    @classmethod
    def from_descriptor(cls, root: Path) -> Rig:
        data = json.loads((Path(root) / "sandbox.json").read_text())
        ssh = data.get("ssh") or {}
        return cls(
            Path(root),
            len(data["nodes"]),
            data["store_type"],
            data["client_auth"],
            data.get("mtls_auth", False),
            ssh=len(ssh.get("ids") or []),
            ssh_beside=bool(ssh.get("beside")),
        )

    def _descriptor(self, fingerprints: dict, salt: dict) -> dict:
        return {
            "root": str(self.root),
            "salt_config_dir": str(self.salt_config_dir),
            "store_type": self.store_type,
            "client_auth": self.client_auth,
            "mtls_auth": self.mtls_auth,
            "rig_identity": RIG_IDENTITY if self.mtls_auth else None,
            "ca_file": str(self.ca_file),
            "client_cert": str(self.client_cert),
            "client_key": str(self.client_key),
            "nodes": [
                {
                    "name": node.name,
                    "address": node.address,
                    "client_port": 9042,
                    "storage_port": 7000,
                    "jmx_port": node.jmx_port,
                    "dc": node.dc,
                    "rack": node.rack,
                    "config_file": str(node.config_path),
                    "pid_file": str(node.pid_path),
                    "issued_fingerprint": fingerprints.get(node.name),
                }
                for node in self.all_nodes()
            ],
            "salt": salt,
        }

    def _write_descriptor(self, data: dict) -> None:
        tmp = self.descriptor_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.descriptor_path)

    # ------------------------------------------------------------------ observation

    def probe_context(self):
        return probe.client_context(str(self.client_cert), str(self.client_key))

    def served_fingerprints(self) -> dict:
        """``{node: {"client": fp, "internode": fp}}`` from new TLS connections."""
        ctx = self.probe_context()
        result = {}
        for node in self.all_nodes():
            result[node.name] = {}
            for label, port in (("client", 9042), ("internode", 7000)):
                try:
                    result[node.name][label] = probe.served_fingerprint(node.address, port, ctx)
                except probe.ProbeError as exc:
                    result[node.name][label] = f"ERROR {exc}"
        return result

    def ring(self, via: int = 1) -> list[dict]:
        res = self.node(via).nodetool("status")
        if res.returncode != 0:
            raise NodeError(f"nodetool status on {self.node(via).name} failed: {res.stderr[-400:]}")
        return ring.parse_status(res.stdout)

    def wait_ring_healthy(self, timeout: float = 120, via: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        rows = []
        while time.monotonic() < deadline:
            try:
                rows = self.ring(via)
            except NodeError:
                rows = []
            if ring.ring_healthy(rows, self.nodes):
                return rows
            time.sleep(1)
        raise NodeError(f"ring not all UN after {timeout:.0f}s: {rows}")

    def replicate_system_keyspaces(self, password=None) -> None:
        """What operators do on a new cluster: replicate system_auth, system_distributed and
        system_traces to RF 3 in the DC (defaults are RF 1-3 SimpleStrategy), so that a node
        restart never takes their ranges below QUORUM."""
        rf = min(3, self.nodes)
        # A node that has just said "listening for CQL" may not be NORMAL in every peer's
        # view yet, and Cassandra refuses to alter RF until it is (seen on a loaded box).
        self.wait_ring_healthy()
        deadline = time.monotonic() + 90
        with self.cql_session(password=password) as session:
            for keyspace in ("system_auth", "system_distributed", "system_traces"):
                statement = (
                    f"ALTER KEYSPACE {keyspace} WITH replication = "
                    f"{{'class': 'NetworkTopologyStrategy', 'dc1': {rf}}}"
                )
                while True:
                    try:
                        session.execute(statement)
                        break
                    except Exception as exc:  # noqa: BLE001 - the driver's ConfigurationException
                        if "not in normal state" not in str(exc) or time.monotonic() > deadline:
                            raise
                        time.sleep(2)

    def grant_identity(self, identity: str, role: str, password=None, superuser=True) -> None:
        """A login role for the client certificates that carry ``identity`` (a SPIFFE URI)."""
        with self.cql_session(password=password) as session:
            session.execute(
                f"CREATE ROLE IF NOT EXISTS {role} WITH LOGIN = true AND SUPERUSER = {superuser}"
            )
            session.execute(f"ADD IDENTITY IF NOT EXISTS '{identity}' TO ROLE '{role}'")

    @contextlib.contextmanager
    def cql_session(self, password=None, via: int = 1, timeout: float = 90):
        """A session pinned to node ``via``, retried until the login works (right after
        start the default superuser may not exist yet)."""
        from cassandra import ConsistencyLevel

        deadline = time.monotonic() + timeout
        while True:
            driver = cql.cluster(
                [self.node(via).address],
                self.cql_context(),
                pin=True,
                consistency=ConsistencyLevel.QUORUM,
                request_timeout=30,
                password=password,
            )
            try:
                session = driver.connect()
            except Exception as exc:  # noqa: BLE001 - NoHostAvailable wraps the auth error
                driver.shutdown()
                if time.monotonic() > deadline:
                    raise NodeError(f"CQL login to {self.node(via).name} failed: {exc}") from exc
                time.sleep(1)
                continue
            try:
                yield session
            finally:
                driver.shutdown()
            return

    def cql_context(self):
        return probe.verifying_context(
            str(self.ca_file), str(self.client_cert), str(self.client_key)
        )

    def cql_roundtrip(self) -> dict:
        """Create the RF=3 demo keyspace, write and read a row at QUORUM over mTLS."""
        from cassandra import ConsistencyLevel

        cluster = cql.cluster(
            [n.address for n in self.all_nodes()],
            self.cql_context(),
            consistency=ConsistencyLevel.QUORUM,
            request_timeout=20,
        )
        try:
            session = cluster.connect()
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {DEMO_KEYSPACE} WITH replication = "
                f"{{'class': 'NetworkTopologyStrategy', 'dc1': {min(3, self.nodes)}}}"
            )
            session.execute(
                f"CREATE TABLE IF NOT EXISTS {DEMO_KEYSPACE}.kv (k text PRIMARY KEY, v text)"
            )
            value = f"written at {time.strftime('%H:%M:%S')}"
            session.execute(
                f"INSERT INTO {DEMO_KEYSPACE}.kv (k, v) VALUES (%s, %s)", ("demo", value)
            )
            row = session.execute(
                f"SELECT k, v FROM {DEMO_KEYSPACE}.kv WHERE k = %s", ("demo",)
            ).one()
            return {"k": row.k, "v": row.v, "written": value}
        finally:
            cluster.shutdown()

    def status(self) -> dict:
        descriptor = self.descriptor()
        issued = {n["name"]: n["issued_fingerprint"] for n in descriptor["nodes"]}
        return {
            "ring": self.ring(),
            "served": self.served_fingerprints(),
            "issued": issued,
            "cql": self.cql_roundtrip(),
        }
