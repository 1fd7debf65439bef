"""certdeploy_metrics: exposition text that Prometheus' own parser reads back, atomic 0644
textfile writes."""

from __future__ import annotations

import os
import stat

import certdeploy_metrics as metrics
import pytest
from prometheus_client.parser import text_string_to_metric_families
from salt.exceptions import CommandExecutionError

NAMES = {
    "certdeploy_cert_expiry_timestamp_seconds",
    "certdeploy_served_matches_expected",
    "certdeploy_last_deployment_timestamp_seconds",
    "certdeploy_last_deployment_success",
}


def sample(**overrides) -> dict:
    return {
        "node": "cass1",
        "target": "cassandra",
        "cluster": "Test Cluster",
        "expiry_timestamp": 1924992000.0,
        "served_matches": True,
        "last_outcome": "deployed",
        "last_deploy_timestamp": 1767225600.5,
        **overrides,
    }


def parse(text: str) -> dict:
    """name -> [(labels, value)]; also checks every family is a gauge with help text."""
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        assert family.documentation
        out[family.name] = [(s.labels, s.value) for s in family.samples]
    return out


def test_render_all_metrics_with_labels_and_values():
    text = metrics.render(
        [sample(), sample(node="cass2", served_matches=False, last_outcome="rolled_back")]
    )
    families = parse(text)
    assert set(families) == NAMES
    base = {"node": "cass1", "target": "cassandra", "cluster": "Test Cluster"}
    base2 = {**base, "node": "cass2"}
    assert families["certdeploy_cert_expiry_timestamp_seconds"] == [
        (base, 1924992000.0),
        (base2, 1924992000.0),
    ]
    assert families["certdeploy_served_matches_expected"] == [(base, 1.0), (base2, 0.0)]
    assert families["certdeploy_last_deployment_timestamp_seconds"][0] == (base, 1767225600.5)
    assert families["certdeploy_last_deployment_success"] == [
        ({**base, "outcome": "deployed"}, 1.0),
        ({**base2, "outcome": "rolled_back"}, 0.0),
    ]
    assert "# TYPE certdeploy_served_matches_expected gauge" in text.splitlines()
    assert text.endswith("\n")


def test_render_omits_unknown_values():
    text = metrics.render(
        [
            sample(
                expiry_timestamp=None,
                served_matches=None,
                last_outcome=None,
                last_deploy_timestamp=None,
            )
        ]
    )
    families = parse(text)
    assert set(families) == NAMES  # HELP/TYPE still there
    assert all(samples == [] for samples in families.values())
    assert [line for line in text.splitlines() if not line.startswith("#")] == []


def test_render_no_samples_is_valid():
    assert all(v == [] for v in parse(metrics.render([])).values())


def test_label_values_are_escaped():
    nasty = 'a"b\\c\nd'
    families = parse(metrics.render([sample(cluster=nasty, last_outcome='fail\n"x"')]))
    labels, _ = families["certdeploy_served_matches_expected"][0]
    assert labels["cluster"] == nasty
    labels, value = families["certdeploy_last_deployment_success"][0]
    assert labels["outcome"] == 'fail\n"x"' and value == 0.0
    assert metrics.escape_label(nasty) == 'a\\"b\\\\c\\nd'


@pytest.fixture
def umask077():
    old = os.umask(0o077)
    yield
    os.umask(old)


def test_write_creates_dir_and_is_0644(tmp_path, umask077):
    path = tmp_path / "textfile" / "certdeploy.prom"
    text = metrics.render([sample()])
    metrics.write(str(path), text)
    assert path.read_text() == text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(path.parent) == ["certdeploy.prom"]  # no temp file left behind


def test_write_replaces_atomically(tmp_path):
    path = tmp_path / "certdeploy.prom"
    metrics.write(str(path), "old\n")
    before = os.stat(path).st_ino
    keep = open(path)  # a reader holding the old file still sees it whole
    try:
        metrics.write(str(path), metrics.render([sample()]))
        assert keep.read() == "old\n"
    finally:
        keep.close()
    assert os.stat(path).st_ino != before  # renamed over, not rewritten in place
    assert "certdeploy_served_matches_expected" in path.read_text()
    assert sorted(os.listdir(tmp_path)) == ["certdeploy.prom"]


def test_write_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "certdeploy.prom"
    metrics.write(str(path), "old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CommandExecutionError, match="disk full"):
        metrics.write(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["certdeploy.prom"]
