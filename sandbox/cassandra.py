"""One local Apache Cassandra 5.0 node: its files, its JVM, and its nodetool.

Node ``n`` binds 127.0.0.n on the usual ports (7000 internode, 9042 CQL) and JMX port
7099 + 100*n. Everything lives under ``<rig>/nodes/cass<n>/``. The JVM is started with the flags
from ``shared/docs/cassandra.md`` (Java 17 exactly; ``bin/cassandra`` refuses root).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from _utils.certdeploy_core import job

REPO = Path(__file__).resolve().parent.parent
LIB_DIR = Path(os.environ.get("CERTDEPLOY_CASSANDRA_LIB", REPO / ".cache" / "cassandra" / "lib"))
JAVA17 = Path(os.environ.get("CERTDEPLOY_JAVA17", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"))
CLUSTER_NAME = "certdeploy-sandbox"
HEAP = os.environ.get("CERTDEPLOY_CASSANDRA_HEAP", "512M")

# conf/jvm17-server.options plus the jdk.compiler / jdk.attach additions of cassandra.in.sh.
_EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.management/com.sun.jmx.remote.security",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc",
    "jdk.attach/sun.tools.attach",
    "jdk.compiler/com.sun.tools.javac.file",
)
_OPENS = (
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch",
    "java.base/java.io",
    "java.base/java.lang.reflect",
    "java.base/java.lang",
    "java.base/java.util",
    "java.base/java.nio",
    "jdk.compiler/com.sun.tools.javac",
)
JVM17_FLAGS = (
    ["-Djdk.attach.allowAttachSelf=true", "-Dio.netty.tryReflectionSetAccessible=true"]
    + [f"--add-exports={m}=ALL-UNNAMED" for m in _EXPORTS]
    + [f"--add-opens={m}=ALL-UNNAMED" for m in _OPENS]
)

LOGBACK = """<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{logdir}/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""
QUIET_LOGBACK = '<configuration><root level="OFF"/></configuration>\n'


class NodeError(RuntimeError):
    pass


ALLOW_ALL = "AllowAllAuthenticator"
PASSWORD = "PasswordAuthenticator"
# The client certificate is the login: its SPIFFE URI SAN maps to a role (ADD IDENTITY).
MUTUAL_TLS = {
    "class_name": "org.apache.cassandra.auth.MutualTlsAuthenticator",
    "parameters": {"validator_class_name": "org.apache.cassandra.auth.SpiffeCertificateValidator"},
}


def check_runtime() -> None:
    """Fail loudly when Java 17 or the Cassandra jars are missing (never skip silently)."""
    if not JAVA17.exists():
        raise NodeError(f"Java 17 not found at {JAVA17}: run 'make bootstrap' (apt openjdk-17)")
    if not list(LIB_DIR.glob("cassandra-all-*.jar")):
        raise NodeError(f"cassandra-all jars missing in {LIB_DIR}: run 'make jars'")


def initial_token(n: int, count: int) -> int:
    return (n - 1) * (2**64 // count) - 2**63


@dataclass(frozen=True)
class Node:
    """Static description of sandbox node ``n`` in a rig directory."""

    rig: Path
    n: int
    count: int = 3

    @property
    def name(self) -> str:
        return f"cass{self.n}"

    @property
    def address(self) -> str:
        return f"127.0.0.{self.n}"

    @property
    def jmx_port(self) -> int:
        return 7099 + 100 * self.n

    @property
    def home(self) -> Path:
        return self.rig / "nodes" / self.name

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def config_path(self) -> Path:
        return self.conf_dir / "cassandra.yaml"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "system.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "cassandra.pid"

    @property
    def dc(self) -> str:
        return "dc1"

    @property
    def rack(self) -> str:
        return f"rack{self.n}"

    # ------------------------------------------------------------------ files

    def write_config(self, tls: dict, authenticator=ALLOW_ALL) -> None:
        """Write cassandra.yaml, rackdc and logback. ``tls`` holds the encryption sections."""
        for sub in ("conf", "data", "commitlog", "hints", "saved_caches", "cdc_raw", "logs", "tmp"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(tls, authenticator))
        (self.conf_dir / "cassandra-rackdc.properties").write_text(
            f"dc={self.dc}\nrack={self.rack}\nprefer_local=true\n"
        )
        (self.conf_dir / "logback.xml").write_text(LOGBACK.format(logdir=self.home / "logs"))
        (self.conf_dir / "logback-tools.xml").write_text(QUIET_LOGBACK)

    def config_text(self, tls: dict, authenticator=ALLOW_ALL, **own) -> str:
        """The cassandra.yaml the sandbox writes for this node. ``own`` (a node of its own
        cluster, :mod:`sandbox.container_node`): ``cluster_name``, ``seeds``, ``token`` and
        ``var`` (the directory its data paths are under, as the process sees it)."""
        seeds = own.get("seeds") or ",".join(f"127.0.0.{i}:7000" for i in range(1, self.count + 1))
        var = Path(own.get("var") or self.home)
        config = {
            "cluster_name": own.get("cluster_name", CLUSTER_NAME),
            "num_tokens": 1,
            "initial_token": str(own.get("token", initial_token(self.n, self.count))),
            "auto_bootstrap": False,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "endpoint_snitch": "GossipingPropertyFileSnitch",
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": seeds}],
                }
            ],
            "listen_address": self.address,
            "rpc_address": self.address,
            "storage_port": 7000,
            "native_transport_port": 9042,
            "start_native_transport": True,
            "data_file_directories": [str(var / "data")],
            "commitlog_directory": str(var / "commitlog"),
            "hints_directory": str(var / "hints"),
            "saved_caches_directory": str(var / "saved_caches"),
            "cdc_raw_directory": str(var / "cdc_raw"),
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "authenticator": authenticator,
            "authorizer": "AllowAllAuthorizer",
            "concurrent_compactors": 1,
            **tls,
        }
        header = "# cassandra.yaml for sandbox node {} (written by sandbox/cassandra.py)\n"
        return header.format(self.name) + yaml.safe_dump(config)

    # ------------------------------------------------------------------ process

    def java_command(self) -> list[str]:
        return daemon_argv(
            JAVA17, self.home, self.conf_dir, LIB_DIR, self.jmx_port, pid_path=self.pid_path
        )

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, timeout: float = 180) -> float:
        """Start the JVM (detached) and wait until CQL listens. Returns seconds taken."""
        started = time.monotonic()
        proc, offset = self.launch()
        self.wait_up(proc, offset, timeout)
        return time.monotonic() - started

    def launch(self):
        """Start the JVM (detached) without waiting: ``(process, log offset)`` for
        :meth:`wait_up` (the rig restarts its nodes side by side)."""
        check_runtime()
        if self.pid():
            raise NodeError(f"{self.name}: already running (pid {self.pid()})")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.home / "logs" / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                self.java_command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,  # outlives `sandbox up`; `down` kills it by pid
            )
        self.pid_path.write_text(f"{proc.pid}\n")
        return proc, offset

    def wait_up(self, proc, log_offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                # Enough of the log for the exception chain (certdeploy reports its cause).
                raise NodeError(
                    f"{self.name}: JVM exited with {proc.returncode}; {self._tail(120)}"
                )
            if self._log_since(log_offset, "Starting listening for CQL clients") and _port_open(
                self.address, 9042
            ):
                return
            time.sleep(0.5)
        raise NodeError(f"{self.name}: CQL not up after {timeout:.0f}s; {self._tail()}")

    def stop(self, timeout: float = 60) -> bool:
        """SIGTERM the JVM, SIGKILL after ``timeout``. True when a process was stopped."""
        pid = self.signal_stop()
        if not pid:
            return False
        self.wait_stopped(pid, timeout)
        return True

    def signal_stop(self) -> int | None:
        """Send SIGTERM (Cassandra's shutdown hook drains); returns the pid, or None."""
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
        return pid

    @staticmethod
    def wait_stopped(pid: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)

    def nodetool_command(self) -> list[str]:
        return nodetool_argv(JAVA17, self.conf_dir, LIB_DIR, self.jmx_port)

    def nodetool(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.nodetool_command(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _log_since(self, offset: int, needle: str) -> bool:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return needle.encode() in fh.read()
        except OSError:
            return False

    def _tail(self, lines: int = 15) -> str:
        for path in (self.log_path, self.home / "logs" / "stdout.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                return f"last lines of {path}:\n" + "\n".join(text)
        return "no log written"


def daemon_argv(java, var, conf, lib, jmx_port: int, pid_path=None) -> list[str]:
    """The Cassandra JVM's argv: data, logs and tmp under ``var``, yaml and logback in
    ``conf``, jars in ``lib`` (paths as the process sees them: a container's are its own)."""
    var, conf = Path(var), Path(conf)
    return [
        str(java),
        f"-Xms{HEAP}",
        f"-Xmx{HEAP}",
        "-Xss512k",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:+HeapDumpOnOutOfMemoryError",
        f"-XX:HeapDumpPath={var / 'tmp'}",
        *JVM17_FLAGS,
        f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
        f"-Dcassandra.storagedir={var}",
        f"-Dcassandra.logdir={var / 'logs'}",
        "-Dcassandra-foreground=yes",
        *([f"-Dcassandra-pidfile={pid_path}"] if pid_path else []),
        f"-Dcassandra.jmx.local.port={jmx_port}",
        f"-Dlogback.configurationFile={conf / 'logback.xml'}",
        f"-Djna.tmpdir={var / 'tmp'}",
        f"-Djava.io.tmpdir={var / 'tmp'}",
        "-Djava.net.preferIPv4Stack=true",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        # The first seed otherwise waits a full 30 s ring delay for peers that are not up
        # yet (measured). A sandbox-only speed-up: production keeps the default.
        "-Dcassandra.ring_delay_ms=5000",
        "-cp",
        f"{conf}:{lib}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def nodetool_argv(java, conf, lib, jmx_port: int) -> list[str]:
    return [
        str(java),
        "-Xmx128M",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        *JVM17_FLAGS,
        f"-Dlogback.configurationFile={Path(conf) / 'logback-tools.xml'}",
        "-cp",
        f"{lib}/*",
        "org.apache.cassandra.tools.NodeTool",
        "-h",
        "127.0.0.1",
        "-p",
        str(jmx_port),
    ]


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    except ChildProcessError:
        pass
    if not job.pid_alive(pid):
        return False
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
