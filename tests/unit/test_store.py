"""Unit tests of the master-side bundle store (``_utils/certdeploy_core/store.py``) and of the
``certdeploy_store`` ext_pillar (``_pillar/certdeploy_store.py``) that serves it.

Bundles come from the test PKI (``sandbox/pki.py``), made once per module with EC keys so the
file runs in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from certdeploy_core import store
from cryptography.hazmat.primitives import serialization
from salt.exceptions import CommandExecutionError, SaltInvocationError

from sandbox import pki

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "prod"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ca():
    return pki.CA.root()


@pytest.fixture(scope="module")
def inter(ca):
    return ca.intermediate()


@pytest.fixture(scope="module")
def leaves(inter):
    """Two certificates for cass1 (to tell versions apart) and one for cass2."""
    return {
        "cass1": inter.issue_node(1, key_type="ec256"),
        "cass1b": inter.issue_node(1, key_type="ec256"),
        "cass2": inter.issue_node(2, key_type="ec256"),
    }


@pytest.fixture(scope="module")
def bundles(ca, leaves):
    """Pillar-form bundles (leaf + intermediate in cert, root CA in trust)."""
    return {name: pki.bundle_dict(leaf, ca.cert) for name, leaf in leaves.items()}


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "store")


@pytest.fixture
def umask0():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture(scope="module")
def pillar_mod():
    """The ext_pillar module, imported from its file the way a test can (not via Salt)."""
    spec = importlib.util.spec_from_file_location(
        "certdeploy_store_ext_pillar", REPO / "_pillar" / "certdeploy_store.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- helpers


def tree(path) -> dict | None:
    """Every entry under ``path``: relative path -> (kind, mode, bytes); None if missing."""
    path = Path(path)
    if not path.exists():
        return None
    out = {}
    for entry in sorted(path.rglob("*")):
        st = entry.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        data = entry.read_bytes() if kind == "file" else None
        out[str(entry.relative_to(path))] = (kind, stat.S_IMODE(st.st_mode), data)
    return out


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def key_lines(*pems: str) -> set[str]:
    return {line.strip() for pem in pems for line in pem.splitlines() if line.strip()}


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def vdir(root, minion="cass1", version="v0001", cluster=CLUSTER) -> Path:
    return Path(root) / cluster / minion / version


# ----------------------------------------------------------------------------- put / read


def test_put_versions_latest_read_round_trip(root, bundles, leaves, ca, inter):
    now = pki.now()  # after the fixtures' CAs began: the store validates at this time
    first = store.put(root, CLUSTER, "cass1", bundles["cass1"], source="renew #1", now=now)
    leaf = leaves["cass1"]
    assert first == {
        "version": "v0001",
        "created": iso(now),
        "fingerprint": leaf.fingerprint,
        "not_after": iso(leaf.cert.not_valid_after_utc),
        "subject": leaf.cert.subject.rfc4514_string(),
        "issuer": inter.cert.subject.rfc4514_string(),
        "source": "renew #1",
        "cluster": CLUSTER,
        "minion": "cass1",
    }
    on_disk = json.loads((vdir(root) / "meta.json").read_text())
    assert on_disk == {k: v for k, v in first.items() if k not in ("cluster", "minion")}

    second = store.put(root, CLUSTER, "cass1", bundles["cass1b"], source="renew #2")
    assert second["version"] == "v0002"
    assert second["fingerprint"] == leaves["cass1b"].fingerprint

    assert [m["version"] for m in store.versions(root, CLUSTER, "cass1")] == ["v0001", "v0002"]
    assert store.latest(root, CLUSTER, "cass1")["fingerprint"] == leaves["cass1b"].fingerprint

    newest = store.read(root, CLUSTER, "cass1")
    assert set(newest) == {"cert", "key", "trust", "version", "fingerprint"}
    assert newest["version"] == "v0002"
    assert newest["fingerprint"] == leaves["cass1b"].fingerprint
    assert newest["cert"] == pki.cert_pem(leaves["cass1b"].cert, inter.cert).decode()
    assert newest["trust"] == pki.cert_pem(ca.cert).decode()
    assert newest["key"] == pki.key_pem(leaves["cass1b"].key).decode()

    old = store.read(root, CLUSTER, "cass1", "v0001")
    assert old["version"] == "v0001" and old["fingerprint"] == leaf.fingerprint
    assert old["key"] == bundles["cass1"]["key"]
    assert store.read(root, CLUSTER, "cass1", "v0009") is None
    assert store.read(root, CLUSTER, "cass2") is None
    assert store.latest(root, CLUSTER, "cass2") is None
    assert store.versions(root, "other", "cass1") == []


def test_read_on_missing_store(root):
    assert store.clusters(root) == []
    assert store.minions(root, CLUSTER) == []
    assert store.find_minion(root, "cass1") == []
    assert store.versions(root, CLUSTER, "cass1") == []
    assert store.read(root, CLUSTER, "cass1") is None
    assert not os.path.exists(root)


def test_separate_chain_is_stored_and_read(root, ca, inter, leaves):
    leaf = leaves["cass1"]
    bundle = {
        "cert": pki.cert_pem(leaf.cert).decode(),
        "chain": pki.cert_pem(inter.cert).decode(),
        "key": pki.key_pem(leaf.key).decode(),
        "trust": pki.cert_pem(ca.cert).decode(),
    }
    store.put(root, CLUSTER, "cass1", bundle)
    got = store.read(root, CLUSTER, "cass1")
    assert got["cert"] == bundle["cert"] and got["chain"] == bundle["chain"]
    assert (vdir(root) / "chain.pem").exists()


def test_blank_chain_is_not_stored(root, bundles):
    store.put(root, CLUSTER, "cass1", {**bundles["cass1"], "chain": "  \n"})
    assert not (vdir(root) / "chain.pem").exists()
    assert "chain" not in store.read(root, CLUSTER, "cass1")


def test_encrypted_key_is_stored_as_plain_pkcs8(root, ca, leaves):
    leaf = leaves["cass1"]
    bundle = {
        **pki.bundle_dict(leaf, ca.cert),
        "key": pki.key_pem(leaf.key, b"s3cret").decode(),
        "key_passphrase": "s3cret",
    }
    meta = store.put(root, CLUSTER, "cass1", bundle)
    stored = (vdir(root) / "key.pem").read_text()
    assert stored.startswith(pki.PKCS8_HEADER.decode())
    key = serialization.load_pem_private_key(stored.encode(), None)
    assert key.public_key() == leaf.key.public_key()
    got = store.read(root, CLUSTER, "cass1")
    assert got["key"] == stored and "key_passphrase" not in got
    assert "s3cret" not in json.dumps(meta)
    assert "s3cret" not in (vdir(root) / "meta.json").read_text()


def test_modes_are_private_even_with_umask_0(root, bundles, umask0):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    store.put(root, CLUSTER, "cass1", bundles["cass1b"])
    dirs = [Path(root), Path(root) / CLUSTER, Path(root) / CLUSTER / "cass1"]
    dirs += [vdir(root, version=v) for v in ("v0001", "v0002")]
    for path in dirs:
        assert mode(path) == 0o700, path
    files = [p for p in Path(root).rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"cert.pem", "key.pem", "trust.pem", "meta.json"}
    assert len(files) == 8
    for path in files:
        assert mode(path) == 0o600, path


def test_existing_loose_root_is_tightened(root, bundles, umask0):
    os.makedirs(root, mode=0o755)
    os.chmod(root, 0o755)
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    assert mode(root) == 0o700


# ----------------------------------------------------------------------------- refusals


def _expired(ca, inter):
    leaf = inter.issue_node(1, key_type="ec256", not_before=pki.now() - dt.timedelta(days=400))
    return pki.bundle_dict(leaf, ca.cert)


def _mismatch(ca, inter):
    leaf, other = inter.issue_node(1, key_type="ec256"), inter.issue_node(1, key_type="ec256")
    return {**pki.bundle_dict(leaf, ca.cert), "key": pki.key_pem(other.key).decode()}


def _wrong_passphrase(ca, inter):
    leaf = inter.issue_node(1, key_type="ec256")
    bundle = pki.bundle_dict(leaf, ca.cert)
    return {**bundle, "key": pki.key_pem(leaf.key, b"right").decode(), "key_passphrase": "wrong"}


def _untrusted(ca, inter):
    leaf = inter.issue_node(1, key_type="ec256")
    return pki.bundle_dict(leaf, pki.CA.root("some other root").cert)


def _no_trust(ca, inter):
    bundle = pki.bundle_dict(inter.issue_node(1, key_type="ec256"), ca.cert)
    del bundle["trust"]
    return bundle


def _key_in_cert(ca, inter):
    leaf = inter.issue_node(1, key_type="ec256")
    bundle = pki.bundle_dict(leaf, ca.cert)
    return {**bundle, "cert": bundle["cert"] + bundle["key"]}


BAD = {
    "expired": (_expired, "validity"),
    "key_mismatch": (_mismatch, "key_match"),
    "wrong_passphrase": (_wrong_passphrase, "key_passphrase"),
    "untrusted": (_untrusted, "chain"),
    "no_trust": (_no_trust, "trust"),
    "key_in_cert": (_key_in_cert, "cert"),
}


@pytest.mark.parametrize("populated", [False, True], ids=["empty-store", "populated-store"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bundle_is_refused_and_nothing_written(root, bundles, ca, inter, case, populated):
    if populated:
        store.put(root, CLUSTER, "cass1", bundles["cass1"])
    before = tree(root)
    make, field = BAD[case]
    bad = make(ca, inter)
    with pytest.raises(SaltInvocationError) as info:
        store.put(root, CLUSTER, "cass1", bad)
    message = str(info.value)
    assert message.startswith(f"cass1: {field}:") and "Fix:" in message
    assert not key_lines(bad["key"]) & key_lines(message)
    assert tree(root) == before


def test_names_checked_only_when_asked(root, bundles):
    with pytest.raises(SaltInvocationError, match=r"cass1: names: .*IP:10\.9\.9\.9"):
        store.put(root, CLUSTER, "cass1", bundles["cass1"], validate_names={"ips": ["10.9.9.9"]})
    assert tree(root) is None
    meta = store.put(
        root, CLUSTER, "cass1", bundles["cass1"], validate_names={"ips": ["127.0.0.1"]}
    )
    assert meta["version"] == "v0001"


def test_min_days_remaining(root, ca, inter):
    short = pki.bundle_dict(inter.issue_node(1, key_type="ec256", days=10), ca.cert)
    with pytest.raises(SaltInvocationError, match="cass1: validity: expires within 30 days"):
        store.put(root, CLUSTER, "cass1", short)
    assert store.put(root, CLUSTER, "cass1", short, min_days_remaining=5)["version"] == "v0001"


BAD_NAMES = ["..", "../etc", "a/b", "/abs", ".hidden", "", "a\x00b", "c..d", None]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_path_traversal_refused(root, tmp_path, bundles, bad):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    before, outside = tree(root), tree(tmp_path)
    calls = [
        lambda: store.put(root, bad, "cass1", bundles["cass1"]),
        lambda: store.put(root, CLUSTER, bad, bundles["cass1"]),
        lambda: store.versions(root, bad, "cass1"),
        lambda: store.versions(root, CLUSTER, bad),
        lambda: store.latest(root, CLUSTER, bad),
        lambda: store.read(root, bad, "cass1"),
        lambda: store.read(root, CLUSTER, bad),
        lambda: store.prune(root, CLUSTER, bad, keep=1),
        lambda: store.minions(root, bad),
        lambda: store.find_minion(root, bad),
    ]
    for call in calls:
        with pytest.raises(SaltInvocationError, match="Fix:"):
            call()
    assert tree(root) == before and tree(tmp_path) == outside


@pytest.mark.parametrize("version", ["../v0001", "v1", "latest", "v0001/..", "V0001"])
def test_bad_version_refused(root, bundles, version):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    with pytest.raises(SaltInvocationError, match="cass1: version: .*Fix:"):
        store.read(root, CLUSTER, "cass1", version)


@pytest.mark.parametrize("bad_root", ["relative/store", "/srv/../etc", "/srv//store", ""])
def test_bad_root_refused(bad_root, bundles):
    with pytest.raises(SaltInvocationError, match="certdeploy_store: root:"):
        store.put(bad_root, CLUSTER, "cass1", bundles["cass1"])
    with pytest.raises(SaltInvocationError):
        store.read(bad_root, CLUSTER, "cass1")


# ----------------------------------------------------------------------------- incomplete


def test_incomplete_version_is_ignored_and_never_reused(root, bundles, leaves):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    half = vdir(root, version="v0002")
    half.mkdir(mode=0o700)
    (half / "cert.pem").write_text(bundles["cass1b"]["cert"])
    (half / "key.pem").write_text(bundles["cass1b"]["key"])

    assert [m["version"] for m in store.versions(root, CLUSTER, "cass1")] == ["v0001"]
    assert store.latest(root, CLUSTER, "cass1")["version"] == "v0001"
    assert store.read(root, CLUSTER, "cass1")["fingerprint"] == leaves["cass1"].fingerprint
    assert store.read(root, CLUSTER, "cass1", "v0002") is None
    assert store.find_minion(root, "cass1") == [(CLUSTER, "cass1")]

    assert store.put(root, CLUSTER, "cass1", bundles["cass1b"])["version"] == "v0003"
    assert store.latest(root, CLUSTER, "cass1")["version"] == "v0003"


def test_minion_with_only_incomplete_versions_is_not_found(root, bundles):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    (Path(root) / "other" / "cass1" / "v0001").mkdir(parents=True)
    assert store.find_minion(root, "cass1") == [(CLUSTER, "cass1")]
    assert store.minions(root, "other") == ["cass1"]


def test_corrupt_store_is_an_error_not_a_fallback(root, bundles):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    store.put(root, CLUSTER, "cass1", bundles["cass1b"])
    # v0002's cert swapped for another one: the fingerprint no longer matches meta.json.
    (vdir(root, version="v0002") / "cert.pem").write_text(bundles["cass2"]["cert"])
    with pytest.raises(CommandExecutionError, match="fingerprint"):
        store.read(root, CLUSTER, "cass1")
    (vdir(root, version="v0002") / "meta.json").write_text("{not json")
    with pytest.raises(CommandExecutionError, match="meta.json"):
        store.latest(root, CLUSTER, "cass1")


def test_symlinked_minion_dir_is_refused(root, bundles):
    store.put(root, CLUSTER, "cass2", bundles["cass2"])
    os.symlink(Path(root) / CLUSTER / "cass2", Path(root) / CLUSTER / "cass1")
    with pytest.raises(CommandExecutionError, match="symlink"):
        store.read(root, CLUSTER, "cass1")
    with pytest.raises(CommandExecutionError, match="symlink"):
        store.put(root, CLUSTER, "cass1", bundles["cass1"])


# ----------------------------------------------------------------------------- listing, prune


def test_clusters_minions_find_minion(root, bundles):
    store.put(root, "c1", "cass1", bundles["cass1"])
    store.put(root, "c1", "cass2", bundles["cass2"])
    store.put(root, "c2", "cass1", bundles["cass1"])
    assert store.clusters(root) == ["c1", "c2"]
    assert store.minions(root, "c1") == ["cass1", "cass2"]
    assert store.minions(root, "c2") == ["cass1"]
    assert store.find_minion(root, "cass1") == [("c1", "cass1"), ("c2", "cass1")]
    assert store.find_minion(root, "cass2") == [("c1", "cass2")]
    assert store.find_minion(root, "cass9") == []


def test_prune(root, bundles):
    for _ in range(4):
        store.put(root, CLUSTER, "cass1", bundles["cass1"])
    half = vdir(root, version="v0005")
    half.mkdir(mode=0o700)  # a put in progress: prune must leave it alone
    assert store.prune(root, CLUSTER, "cass1", keep=2) == ["v0001", "v0002"]
    assert [m["version"] for m in store.versions(root, CLUSTER, "cass1")] == ["v0003", "v0004"]
    assert not vdir(root, version="v0001").exists()
    assert not vdir(root, version="v0002").exists()
    assert half.exists()
    assert store.prune(root, CLUSTER, "cass1", keep=2) == []
    assert store.prune(root, CLUSTER, "cass9") == []
    for keep in (0, -1, "2", True):
        with pytest.raises(SaltInvocationError, match="cass1: keep:"):
            store.prune(root, CLUSTER, "cass1", keep=keep)
    assert store.put(root, CLUSTER, "cass1", bundles["cass1"])["version"] == "v0006"


# ----------------------------------------------------------------------------- ext_pillar


def test_virtual(pillar_mod):
    assert pillar_mod.HAS_UTILS is True
    assert pillar_mod.__virtual__() == "certdeploy_store"
    assert pillar_mod.DEFAULT_ROOT == store.DEFAULT_ROOT == "/srv/certdeploy/store"


def test_ext_pillar_serves_only_the_requested_minion(root, pillar_mod, bundles, leaves):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    store.put(root, CLUSTER, "cass2", bundles["cass2"])
    got = pillar_mod.ext_pillar("cass1", {}, root=root)
    assert got == {
        "certdeploy": {
            "bundle": {
                "cert": bundles["cass1"]["cert"],
                "key": bundles["cass1"]["key"],
                "trust": bundles["cass1"]["trust"],
            },
            "bundle_version": "v0001",
            "bundle_fingerprint": leaves["cass1"].fingerprint,
        }
    }
    served = key_lines(*got["certdeploy"]["bundle"].values())
    other_key = key_lines(bundles["cass2"]["key"])
    assert served & other_key == {pki.PKCS8_HEADER.decode(), pki.PKCS8_FOOTER.decode()}
    assert leaves["cass2"].fingerprint not in json.dumps(got)

    assert (
        pillar_mod.ext_pillar("cass2", {}, root=root)["certdeploy"]["bundle"]["key"]
        == (bundles["cass2"]["key"])
    )
    assert pillar_mod.ext_pillar("cass9", {}, root=root) == {}
    assert pillar_mod.ext_pillar("bad@id", {}, root=root) == {}
    assert pillar_mod.ext_pillar("cass1", {}, root=root, cluster="other") == {}
    assert pillar_mod.ext_pillar("cass1", {}, root=str(Path(root) / "nowhere")) == {}


def test_ext_pillar_chain_is_served_when_stored(root, pillar_mod, ca, inter, leaves):
    leaf = leaves["cass1"]
    bundle = {
        "cert": pki.cert_pem(leaf.cert).decode(),
        "chain": pki.cert_pem(inter.cert).decode(),
        "key": pki.key_pem(leaf.key).decode(),
        "trust": pki.cert_pem(ca.cert).decode(),
    }
    store.put(root, CLUSTER, "cass1", bundle)
    served = pillar_mod.ext_pillar("cass1", {}, root=root)["certdeploy"]["bundle"]
    assert served == bundle


def test_ext_pillar_pin(root, pillar_mod, bundles, leaves, caplog):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    store.put(root, CLUSTER, "cass1", bundles["cass1b"])
    store.put(root, CLUSTER, "cass2", bundles["cass2"])

    newest = pillar_mod.ext_pillar("cass1", {}, root=root)["certdeploy"]
    assert newest["bundle_version"] == "v0002"
    assert newest["bundle_fingerprint"] == leaves["cass1b"].fingerprint

    for pin in ({"cass1": "v0001"}, {"cass1": 1}):
        pinned = pillar_mod.ext_pillar("cass1", {}, root=root, pin=pin)["certdeploy"]
        assert pinned["bundle_version"] == "v0001"
        assert pinned["bundle_fingerprint"] == leaves["cass1"].fingerprint
        assert pinned["bundle"]["key"] == bundles["cass1"]["key"]

    other = pillar_mod.ext_pillar("cass2", {}, root=root, pin={"cass1": "v0001"})
    assert other["certdeploy"]["bundle_fingerprint"] == leaves["cass2"].fingerprint

    with caplog.at_level(logging.WARNING):
        assert pillar_mod.ext_pillar("cass1", {}, root=root, pin={"cass1": "v0007"}) == {}
    assert "pinned to v0007" in caplog.text
    assert pillar_mod.ext_pillar("cass1", {}, root=root, pin={"cass1": "../v1"}) == {}
    assert pillar_mod.ext_pillar("cass1", {}, root=root, pin=["v0001"]) == {}


def test_ext_pillar_ambiguous_cluster(root, pillar_mod, bundles, leaves, caplog):
    store.put(root, "c1", "cass1", bundles["cass1"])
    store.put(root, "c2", "cass1", bundles["cass1b"])
    with caplog.at_level(logging.WARNING):
        assert pillar_mod.ext_pillar("cass1", {}, root=root) == {}
    assert "c1, c2" in caplog.text
    got = pillar_mod.ext_pillar("cass1", {}, root=root, cluster="c2")
    assert got["certdeploy"]["bundle_fingerprint"] == leaves["cass1b"].fingerprint


def test_ext_pillar_corrupt_store_serves_nothing(root, pillar_mod, bundles, caplog):
    store.put(root, CLUSTER, "cass1", bundles["cass1"])
    (vdir(root) / "cert.pem").write_text(bundles["cass2"]["cert"])
    with caplog.at_level(logging.ERROR):
        assert pillar_mod.ext_pillar("cass1", {}, root=root) == {}
    assert "fingerprint" in caplog.text


# ----------------------------------------------------------------------------- key hygiene


def test_no_key_material_in_meta_or_logs(root, pillar_mod, ca, inter, leaves, caplog):
    leaf = leaves["cass1"]
    encrypted = {
        **pki.bundle_dict(leaf, ca.cert),
        "key": pki.key_pem(leaf.key, b"pw").decode(),
        "key_passphrase": "pw",
    }
    plain_key = pki.key_pem(leaf.key).decode()
    bad = _mismatch(ca, inter)
    with caplog.at_level(logging.DEBUG):
        store.put(root, CLUSTER, "cass1", encrypted, source="test")
        store.put(root, CLUSTER, "cass1", pki.bundle_dict(leaf, ca.cert))
        with pytest.raises(SaltInvocationError):
            store.put(root, CLUSTER, "cass1", bad)
        store.versions(root, CLUSTER, "cass1")
        assert store.read(root, CLUSTER, "cass1")["key"] == plain_key
        assert pillar_mod.ext_pillar("cass1", {}, root=root)["certdeploy"]["bundle"]
        assert pillar_mod.ext_pillar("cass1", {}, root=root, pin={"cass1": "v0001"})
        assert pillar_mod.ext_pillar("cass1", {}, root=root, pin={"cass1": "v0009"}) == {}
        assert pillar_mod.ext_pillar("cass9", {}, root=root) == {}
        (vdir(root, version="v0002") / "cert.pem").write_text(bad["cert"])
        assert pillar_mod.ext_pillar("cass1", {}, root=root) == {}
        store.prune(root, CLUSTER, "cass1", keep=1)

    secret_lines = key_lines(encrypted["key"], plain_key, bad["key"])
    assert caplog.records, "expected the store and the ext_pillar to log something"
    logged = "\n".join(r.getMessage() for r in caplog.records) + "\n" + caplog.text
    for line in secret_lines:
        assert line not in logged
    assert "PRIVATE KEY" not in logged
    for meta_file in Path(root).rglob("meta.json"):
        text = meta_file.read_text()
        assert not any(line in text for line in secret_lines)
        assert "PRIVATE KEY" not in text and "pw" not in json.loads(text).values()
