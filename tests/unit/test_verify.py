"""The verifier's judgement, on synthetic observations: which signals end verification early
(deterministic) and which wait (not yet). The live proof is the rig test
``test_node_deploy.test_3_foreign_ca_leaf_is_rolled_back_fast``."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from certdeploy_core import cassandra_yaml as cyaml
from certdeploy_core import probe
from certdeploy_core import verify as verifier

REPO = Path(__file__).resolve().parents[2]

NEW, OLD, ROGUE = "a" * 64, "b" * 64, "c" * 64


def seen(fingerprint=NEW, rejected=None, untrusted=None, error=None, address="127.0.0.2:9042"):
    return {
        "fingerprint": fingerprint,
        "rejected": rejected,
        "untrusted": untrusted,
        "error": error,
        "address": address,
    }


def obs(client=None, internode=None, peers=None, cql_error=None):
    return {
        "client": client or seen(),
        "internode": internode or seen(address="127.0.0.2:7000"),
        "peers": peers or {},
        "cql_error": cql_error,
    }


def judge(method="reload"):
    return verifier.Judge("cass2", NEW, (OLD,), method)


def rounds(j, observation, n, elapsed=5.0):
    return [j.observe(observation, elapsed) for _ in range(n)]


def test_all_good_is_never_deterministic():
    assert rounds(judge(), obs(), 5) == [None] * 5


@pytest.mark.parametrize(
    "observation",
    [
        obs(client=seen(fingerprint=None, error="127.0.0.2:9042: [Errno 111] Connection refused")),
        obs(internode=seen(fingerprint=None, error="timed out")),
        obs(cql_error="NoHostAvailable: ('Unable to connect', {'127.0.0.2': OSError(111)})"),
        obs(peers={"127.0.0.1": seen(fingerprint=None, error="Connection refused")}),
    ],
    ids=["refused-while-starting", "timeout", "cql-not-up", "peer-down"],
)
def test_not_yet_waits(observation):
    assert rounds(judge(), observation, 6) == [None] * 6


@pytest.mark.parametrize(
    "observation, words",
    [
        (obs(client=seen(rejected="UNKNOWN_CA")), ["client port", "refuses", "UNKNOWN_CA"]),
        (
            obs(peers={"127.0.0.1": seen(rejected="CERTIFICATE_UNKNOWN")}),
            ["peer 127.0.0.1 refuses cass2's installed certificate", "CERTIFICATE_UNKNOWN"],
        ),
        (
            obs(peers={"127.0.0.3": seen(untrusted="unable to get local issuer certificate")}),
            ["truststore does not trust peer 127.0.0.3"],
        ),
        (obs(client=seen(fingerprint=ROGUE)), ["serves cccccccc", "neither the expected"]),
        (obs(internode=seen(fingerprint=OLD)), ["still serves the previous", "reload did not"]),
        (
            obs(cql_error="NoHostAvailable: SSLCertVerificationError CERTIFICATE_VERIFY_FAILED"),
            ["CQL", "own installed truststore"],
        ),
    ],
    ids=["node-alert", "peer-alert", "peer-untrusted", "foreign-served", "stale-reload", "cql"],
)
def test_deterministic_after_two_rounds_in_a_row(observation, words):
    j = judge()
    first, second = rounds(j, observation, 2)
    assert first is None  # one sighting is not enough
    for word in words:
        assert word in second, second


def test_a_signal_must_repeat_in_consecutive_rounds():
    j = judge()
    bad = obs(client=seen(rejected="UNKNOWN_CA"))
    assert j.observe(bad, 1) is None
    assert j.observe(obs(), 2) is None  # the streak breaks
    assert j.observe(bad, 3) is None
    assert j.observe(bad, 4) is not None


def test_previous_certificate_right_after_a_reload_or_a_restart_is_not_yet():
    early = judge("reload")
    assert rounds(early, obs(client=seen(fingerprint=OLD)), 3, elapsed=1.0) == [None] * 3
    restart = judge("restart")
    assert rounds(restart, obs(client=seen(fingerprint=OLD)), 4) == [None] * 4


class _Alert(ssl.SSLError):
    def __init__(self, reason):
        super().__init__(1, f"[SSL: {reason}] tlsv1 alert ({reason})")
        self.reason = reason


@pytest.mark.parametrize(
    "reason, alert",
    [
        ("TLSV1_ALERT_UNKNOWN_CA", "UNKNOWN_CA"),
        ("SSLV3_ALERT_CERTIFICATE_UNKNOWN", "CERTIFICATE_UNKNOWN"),
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "CERTIFICATE_REQUIRED"),
        ("SSLV3_ALERT_BAD_CERTIFICATE", "BAD_CERTIFICATE"),
        ("WRONG_VERSION_NUMBER", None),
        ("UNEXPECTED_EOF_WHILE_READING", None),
    ],
)
def test_cert_alerts_are_told_from_other_tls_errors(reason, alert):
    assert probe.cert_alert(_Alert(reason)) == alert
    assert probe.cert_alert(ConnectionRefusedError(111, "Connection refused")) is None


@pytest.mark.parametrize(
    "seeds, hosts",
    [
        ("127.0.0.1:7000,127.0.0.2:7000", ["127.0.0.1", "127.0.0.2"]),
        ("cass1, cass2", ["cass1", "cass2"]),
        ("[::1]:7000,::2", ["::1", "::2"]),
    ],
)
def test_seed_addresses(tmp_path, seeds, hosts):
    path = tmp_path / "cassandra.yaml"
    path.write_text(
        "cluster_name: t\nseed_provider:\n  - class_name: org.apache.cassandra.locator."
        f'SimpleSeedProvider\n    parameters:\n      - seeds: "{seeds}"\n'
    )
    assert cyaml.seed_addresses(str(path)) == hosts
    assert cyaml.seed_addresses(str(tmp_path / "missing.yaml")) == []


def test_internal_error_counts_only_after_the_handshake():
    """Cassandra 5.0 refuses an untrusted client certificate with internal_error, after the
    TLS 1.3 handshake (measured on the rig); elsewhere that alert is not a verdict."""
    assert probe.post_handshake_alert(_Alert("TLSV1_ALERT_INTERNAL_ERROR")) == "INTERNAL_ERROR"
    assert probe.cert_alert(_Alert("TLSV1_ALERT_INTERNAL_ERROR")) is None


def test_the_first_rounds_cql_counts_only_if_its_connection_was_served_the_expected():
    from concurrent.futures import Future

    def done(result):
        future = Future()
        future.set_result(result)
        return future

    new, old = "ab" * 32, "cd" * 32
    good = {"ok": True, "served": new, "release_version": "5.0.8"}
    assert verifier._early(done(good), new) == good
    assert verifier._early(done({**good, "served": old}), new) is None  # before the reload took
    assert verifier._early(done({**good, "served": None}), new) is None  # the driver did not say
    assert verifier._early(done({"ok": False, "error": "NoHostAvailable"}), new) is None
    assert verifier._early(None, new) is None  # not a reload: nothing ran early
