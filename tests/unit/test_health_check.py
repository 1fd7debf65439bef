"""certdeploy_health_check against a real local TLS server (a thread, no Cassandra): served
fingerprints, negotiated protocol versions, expiry and file hygiene."""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import socket
import ssl
import threading
import time
import warnings

import pytest
from certdeploy_core import health_check as hc
from certdeploy_core import material
from certdeploy_core import target as certdeploy_target

from sandbox import pki

# ----------------------------------------------------------------------------- helpers


class TLSServer:
    """A TLS server on 127.0.0.1:<ephemeral> in a thread: handshakes, then closes. ``serve``
    swaps the certificate it presents; ``client_ca`` makes it demand a client certificate."""

    def __init__(
        self, directory, leaf, *, minimum=ssl.TLSVersion.TLSv1_2, client_ca=None, ciphers=None
    ):
        self.directory = directory
        self.minimum = minimum
        self.ciphers = ciphers
        self.client_ca = client_ca
        self.handshakes = 0
        self.serve(leaf)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def serve(self, leaf) -> None:
        cert = self.directory / f"srv-{leaf.fingerprint[:12]}.crt"
        key = self.directory / f"srv-{leaf.fingerprint[:12]}.key"
        cert.write_bytes(pki.cert_pem(leaf.cert, *leaf.chain))
        key.touch(mode=0o600)
        key.write_bytes(pki.key_pem(leaf.key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1
            ctx.minimum_version = self.minimum
        if self.ciphers:
            ctx.set_ciphers(self.ciphers)
        ctx.load_cert_chain(str(cert), str(key))
        if self.client_ca is not None:
            ca = self.directory / "client-ca.crt"
            ca.write_bytes(pki.cert_pem(self.client_ca))
            ctx.load_verify_locations(str(ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2)
            try:
                with self.ctx.wrap_socket(conn, server_side=True):
                    self.handshakes += 1
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def me() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def node_pillar(tmp_path, port, **overrides) -> dict:
    owner, group = me()
    node = {
        "node": "cass1",
        "listen_address": "127.0.0.1",
        "rpc_address": "127.0.0.1",
        "config_file": str(tmp_path / "node" / "cassandra.yaml"),
        "keystore": str(tmp_path / "node" / "keystore.pem"),
        "truststore": str(tmp_path / "node" / "truststore.pem"),
        "store_type": "pem",
        "client_port": port,
        "internode_port": port,
        "owner": owner,
        "group": group,
        "backup_dir": str(tmp_path / "backups"),
        **overrides,
    }
    return {"certdeploy": {"cluster": "Test Cluster", "targets": {"cassandra": node}}}


def install(tmp_path, leaf, root, port, **overrides):
    """Write the node's PEM key/trust stores (0600) and return its Target."""
    (tmp_path / "node").mkdir(exist_ok=True)
    pillar = node_pillar(tmp_path, port, **overrides)
    target = certdeploy_target.load_target(pillar, "cassandra", "cass1")
    for path, data in (
        (target.keystore, pki.pem_keystore(leaf)),
        (target.truststore, pki.pem_truststore(root.cert)),
    ):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(path, 0o600)
    return target, pillar


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def leaf(ca):
    return ca.issue("srv", ips=("127.0.0.1",), key_type="ec256")


@pytest.fixture(scope="module")
def other_leaf(ca):
    return ca.issue("other", ips=("127.0.0.1",), key_type="ec256")


@pytest.fixture
def server(tmp_path, leaf):
    srv = TLSServer(tmp_path, leaf)
    yield srv
    srv.close()


# ----------------------------------------------------------------------------- served


def test_served_reports_the_leaf_on_both_ports(tmp_path, server, leaf, root):
    target, _ = install(tmp_path, leaf, root, server.port)
    assert material.on_disk(target)["keystore"]["fingerprint"] == leaf.fingerprint
    assert hc.served(target) == {"client": leaf.fingerprint, "internode": leaf.fingerprint}
    deadline = time.monotonic() + 2  # the server thread counts after its side completes
    while server.handshakes < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.handshakes == 2  # two brand-new connections


def test_served_without_keystore_falls_back_to_anonymous_probe(tmp_path, server, leaf, root):
    target, _ = install(tmp_path, leaf, root, server.port)
    os.unlink(target.keystore)
    assert material.on_disk(target)["keystore"] is None
    assert hc.served(target)["client"] == leaf.fingerprint


def test_served_closed_port_is_an_error_not_an_exception(tmp_path, leaf, root):
    target, _ = install(tmp_path, leaf, root, closed_port())
    result = hc.served(target, timeout=1)
    assert set(result) == {"client", "internode"}
    assert "error" in result["client"] and "127.0.0.1" in result["client"]["error"]


# ----------------------------------------------------------------------------- TLS versions


def test_tls_versions_real_handshakes(server):
    result = hc.tls_versions("127.0.0.1", server.port)
    assert result["TLSv1.2"] is True and result["TLSv1.3"] is True
    for old in ("TLSv1", "TLSv1.1"):
        assert result[old] in (False, None)
        assert result["errors"][old]  # a reason for every version that is not True
    assert "TLSv1.2" not in result["errors"] and "TLSv1.3" not in result["errors"]


def test_tls_versions_only_tls13_server(tmp_path, leaf):
    srv = TLSServer(tmp_path, leaf, minimum=ssl.TLSVersion.TLSv1_3)
    try:
        result = hc.tls_versions("127.0.0.1", srv.port)
    finally:
        srv.close()
    assert result["TLSv1.2"] is False and result["TLSv1.3"] is True
    assert "protocol" in result["errors"]["TLSv1.2"].lower()


def test_tls_versions_detects_legacy_versions_a_server_allows(tmp_path, leaf):
    srv = TLSServer(tmp_path, leaf, minimum=ssl.TLSVersion.TLSv1, ciphers="DEFAULT:@SECLEVEL=0")
    try:
        result = hc.tls_versions("127.0.0.1", srv.port)
    finally:
        srv.close()
    for old in ("TLSv1", "TLSv1.1"):
        # True, unless this machine's OpenSSL cannot offer the version at all.
        assert result[old] is True or (result[old] is None and result["errors"][old])
    assert result["TLSv1.2"] is True and result["TLSv1.3"] is True


def test_tls_versions_presents_identity_from_ctx_factory(tmp_path, leaf, root, ca):
    srv = TLSServer(tmp_path, leaf, client_ca=root.cert)
    try:
        target, _ = install(tmp_path, leaf, root, srv.port)
        anonymous = hc.tls_versions("127.0.0.1", srv.port)
        mutual = hc.tls_versions(
            "127.0.0.1", srv.port, ctx_factory=lambda: material.probe_context(target)
        )
    finally:
        srv.close()
    assert anonymous["TLSv1.2"] is False  # certificate required
    assert mutual["TLSv1.2"] is True and mutual["TLSv1.3"] is True


def test_tls_versions_unreachable_is_undetermined():
    result = hc.tls_versions("127.0.0.1", closed_port(), timeout=1)
    for version in hc.TLS_VERSIONS:
        assert result[version] in (None,)
        assert result["errors"][version]


def test_tls_versions_local_inability_is_none(monkeypatch, server):
    monkeypatch.setattr(ssl, "HAS_TLSv1", False)
    result = hc.tls_versions("127.0.0.1", server.port)
    assert result["TLSv1"] is None
    assert "without TLSv1" in result["errors"]["TLSv1"]
    assert result["TLSv1.2"] is True


# ----------------------------------------------------------------------------- expiry


def test_days_left():
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert hc.days_left("2030-01-11T00:00:00+00:00", now) == 10
    assert hc.days_left("2030-01-01T12:00:00", now) == 0.5  # naive = UTC
    assert hc.days_left("2029-12-31T00:00:00+00:00", now) == -1
    assert 360 < hc.days_left((dt.datetime.now(dt.timezone.utc) + dt.timedelta(365)).isoformat())


# ----------------------------------------------------------------------------- node_health


def test_node_health_match(tmp_path, server, leaf, root):
    target, _ = install(tmp_path, leaf, root, server.port)
    health = hc.node_health(target)
    assert health["node"] == "cass1"
    assert health["expected"] == leaf.fingerprint
    assert health["match"] is True and health["serving"] is True
    assert health["not_after"] == leaf.cert.not_valid_after_utc.isoformat()
    assert 364 < health["days_left"] <= 365
    assert health["expiring"] is False


def test_node_health_mismatch(tmp_path, server, leaf, other_leaf, root):
    target, _ = install(tmp_path, leaf, root, server.port)
    server.serve(other_leaf)
    health = hc.node_health(target)
    assert health["match"] is False and health["serving"] is True
    assert health["served"]["client"] == other_leaf.fingerprint


def test_node_health_not_serving(tmp_path, leaf, root):
    target, _ = install(tmp_path, leaf, root, closed_port())
    health = hc.node_health(target, timeout=1)
    assert health["match"] is False and health["serving"] is False
    assert "error" in health["served"]["client"]


def test_node_health_expiring(tmp_path, server, ca, root):
    short = ca.issue("short", ips=("127.0.0.1",), key_type="ec256", days=10)
    server.serve(short)
    target, _ = install(tmp_path, short, root, server.port)
    health = hc.node_health(target, warn_days=30)
    assert health["match"] is True
    assert health["expiring"] is True and 9 < health["days_left"] <= 10
    later = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    assert hc.node_health(target, warn_days=30, now=later)["expiring"] is False


# ----------------------------------------------------------------------------- file hygiene


def _backups(target) -> str:
    backup = os.path.join(target.backup_dir, "20300101T000000000000Z")
    os.makedirs(backup, mode=0o700)
    os.chmod(target.backup_dir, 0o700)
    os.chmod(backup, 0o700)
    path = os.path.join(backup, "keystore.pem")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def _failed(findings) -> dict:
    return {f["check"]: f["message"] for f in findings if not f["ok"]}


def test_file_findings_all_ok(tmp_path, leaf, root):
    target, _ = install(tmp_path, leaf, root, 1)
    _backups(target)
    findings = hc.file_findings(target)
    assert _failed(findings) == {}
    assert all(set(f) == {"check", "ok", "message"} for f in findings)
    checks = {f["check"] for f in findings}
    assert {"keystore_mode", "keystore_owner", "truststore_group", "backup_files_mode"} <= checks


def test_file_findings_flags_loose_keystore_and_backup_file(tmp_path, leaf, root):
    target, _ = install(tmp_path, leaf, root, 1)
    loose = _backups(target)
    os.chmod(target.keystore, 0o644)
    os.chmod(loose, 0o644)
    failed = _failed(hc.file_findings(target))
    assert set(failed) == {"keystore_mode", "backup_files_mode"}
    assert "0644" in failed["keystore_mode"] and "0600" in failed["keystore_mode"]
    assert loose in failed["backup_files_mode"]


def test_file_findings_flags_missing_store_open_backup_dir_and_wrong_owner(tmp_path, leaf, root):
    target, _ = install(tmp_path, leaf, root, 1, owner="root", group="root", mode="0400")
    _backups(target)
    os.unlink(target.truststore)
    os.chmod(target.backup_dir, 0o755)
    failed = _failed(hc.file_findings(target))
    assert "truststore_present" in failed
    assert "backup_dir_mode" in failed and "0755" in failed["backup_dir_mode"]
    assert "keystore_mode" in failed  # 0600 on disk, 0400 wanted
    if os.getuid() != 0:
        assert "keystore_owner" in failed and "keystore_group" in failed


def test_file_findings_absent_backup_dir_is_fine(tmp_path, leaf, root):
    target, _ = install(tmp_path, leaf, root, 1)
    assert _failed(hc.file_findings(target)) == {}
