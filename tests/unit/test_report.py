"""Tests for certdeploy_report: HTML structure and escaping, text table, atomic write."""

import copy
import os
import stat
from html.parser import HTMLParser

import pytest
from certdeploy_core import report
from salt.exceptions import CommandExecutionError

T0 = 1795725000.0  # 2026-11-26T20:30:00Z, matching the job id
OLD = ["a1" * 32, "b2" * 32, "c3" * 32]
NEW = ["d4" * 32, "e5" * 32, "f6" * 32]
EVIL = '<script>alert("x")</script> TLS handshake failed on 127.0.0.3:7001'


def _steps(start: float, names_and_durations) -> list[dict]:
    steps, t = [], start
    for name, duration in names_and_durations:
        steps.append({"step": name, "start": t, "end": t + duration})
        t += duration + 0.2
    return steps


def _node(i: int, state: str, start: float, steps, *, error=None, served=None) -> dict:
    addr = f"127.0.0.{i + 1}"
    return {
        "state": state,
        "address": addr,
        "dc": "dc1",
        "rack": f"rack{i + 1}",
        "old_fingerprint": OLD[i],
        "new_fingerprint": NEW[i],
        "not_after": "2027-11-26T20:15:51Z",
        "old_not_after": "2026-12-01T00:00:00Z",
        "backup_id": f"20261126T2030{i:02d}Z",
        "method": "reload",
        "steps": _steps(start, steps),
        "timings": {
            "validate": 0.04,
            "backup": 0.01,
            "install": 0.05,
            "configure": 0.01,
            "activate": 0.97,
            "verify": 1.04,
            "total": 2.15 + i,
        },
        "evidence": {
            "client": served or NEW[i],
            "internode": served or NEW[i],
            "cql": error is None,
            "ring": {"127.0.0.1": "UN", "127.0.0.2": "UN", "127.0.0.3": "UN" if i < 2 else "DN"},
        },
        "error": error,
    }


def sample_job() -> dict:
    """A finished 3-node rollout: two nodes deployed, the third rolled back with an error."""
    return {
        "job_id": "20261126T203000Z-ab12",
        "cluster": "certdeploy-sandbox",
        "kind": "rollout",
        "created": T0,
        "updated": T0 + 41.5,
        "status": "halted",
        "params": {
            "tgt": "cass*",
            "method": "auto",
            "canary": 1,
            "max_unavailable": 1,
            "on_failure": "rollback_node",
            "test": False,
        },
        "plan": {
            "order": ["cass1", "cass2", "cass3"],
            "batches": [["cass1"], ["cass2"], ["cass3"]],
            "canary": ["cass1"],
        },
        "nodes": {
            "cass1": _node(0, "deployed", T0 + 1, [("deploy", 2.2), ("health_gate", 8.0)]),
            "cass2": _node(1, "deployed", T0 + 12, [("deploy", 3.1), ("health_gate", 6.5)]),
            "cass3": _node(
                2,
                "rolled_back",
                T0 + 22.5,
                [("deploy", 4.0), ("health_gate", 5.0), ("rollback", 6.0)],
                error=EVIL,
                served=OLD[2],
            ),
        },
        "load": {
            "before": {"ops": 1200, "failed": 0, "ops_per_s": 120.0, "p50_ms": 2.1, "p99_ms": 9.8},
            "during": {"ops": 3600, "failed": 3, "ops_per_s": 118.2, "p50_ms": 2.5, "p99_ms": 14.1},
        },
    }


class _Collector(HTMLParser):
    """Records every start tag with its attributes, and all text data."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag, **attrs):
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


def _parse(markup: str) -> _Collector:
    parser = _Collector()
    parser.feed(markup)
    parser.close()
    return parser


# --- HTML --------------------------------------------------------------------------------------


def test_html_structure_sections_rows_and_bars():
    job = sample_job()
    doc = _parse(report.render_html(job))
    section_ids = [a.get("id") for a in doc.find("section")]
    assert section_ids == ["timeline", "nodes", "load"]

    rows = [a for a in doc.find("tr") if "data-node" in a]
    assert [(a["data-node"], a["data-state"]) for a in rows] == [
        ("cass1", "deployed"),
        ("cass2", "deployed"),
        ("cass3", "rolled_back"),
    ]

    bars = [a for a in doc.find("rect") if a.get("class") == "step"]
    for name, node in job["nodes"].items():
        got = [a["data-step"] for a in bars if a["data-node"] == name]
        assert got == [s["step"] for s in node["steps"]]
    assert len(bars) == 7


def test_html_bars_inside_canvas():
    doc = _parse(report.gantt_svg(sample_job(), width=900))
    svg = doc.find("svg")[0]
    width, height = float(svg["width"]), float(svg["height"])
    assert width == 900
    bars = [a for a in doc.find("rect") if a.get("class") == "step"]
    xs = sorted(float(a["x"]) for a in bars)
    for bar in bars:
        x, w, y = float(bar["x"]), float(bar["width"]), float(bar["y"])
        assert 0 < x and x + w <= width and 0 < y < height
    # The earliest step starts at the plot origin and bars move right in time order.
    assert xs[0] == min(float(a["x"]) for a in bars)
    tooltips = "".join(doc.text)
    assert "cass3: rollback 6.00 s" in tooltips


def test_html_escapes_error_and_has_no_scripts_or_external_urls():
    markup = report.render_html(sample_job())
    doc = _parse(markup)
    assert doc.find("script") == []
    assert "&lt;script&gt;" in markup
    assert "<script" not in markup
    assert EVIL in "".join(doc.text)  # shown to the reader, as text
    for _tag, attrs in doc.tags:
        for key in ("src", "href"):
            assert "http" not in (attrs.get(key) or "")
    assert doc.find("link") == [] and doc.find("img") == []


def test_html_header_and_evidence():
    markup = report.render_html(sample_job())
    assert "20261126T203000Z-ab12" in markup
    assert "certdeploy-sandbox" in markup
    assert "2026-11-26T20:30:00Z" in markup  # created, UTC ISO
    assert "41.50 s" in markup  # wall time
    assert "2/3 nodes" in markup
    for fp in OLD + NEW:
        assert fp in markup  # full fingerprints in the node table
    assert "= new" in markup and "= old" in markup  # cass3 still serves the old cert


def test_html_escapes_node_names_and_params():
    job = sample_job()
    job["plan"]["order"][0] = 'cass"1<b>'
    job["nodes"]['cass"1<b>'] = job["nodes"].pop("cass1")
    job["params"]["tgt"] = "<i>x</i>"
    markup = report.render_html(job)
    doc = _parse(markup)
    assert doc.find("b") == [] and doc.find("i") == []
    assert [a for a in doc.find("tr") if a.get("data-node") == 'cass"1<b>']


# --- robustness --------------------------------------------------------------------------------


def test_job_without_steps_running_or_load_renders():
    job = sample_job()
    for node in job["nodes"].values():
        node["steps"] = []
    del job["load"]
    markup = report.render_html(job)
    doc = _parse(markup)
    assert [a.get("id") for a in doc.find("section")] == ["timeline", "nodes"]
    assert [a for a in doc.find("rect") if a.get("class") == "step"] == []
    assert "no steps recorded" in markup
    assert "load before" not in report.render_text(job)


def test_running_job_with_open_step_and_pending_nodes():
    job = sample_job()
    job["status"] = "running"
    job["updated"] = T0 + 5
    job["nodes"]["cass1"]["state"] = "running"
    job["nodes"]["cass1"]["steps"] = [{"step": "deploy", "start": T0 + 1, "end": None}]
    job["nodes"]["cass2"] = {"state": "pending"}
    del job["nodes"]["cass3"]
    doc = _parse(report.render_html(job))
    rows = [(a["data-node"], a["data-state"]) for a in doc.find("tr") if "data-node" in a]
    assert rows == [("cass1", "running"), ("cass2", "pending"), ("cass3", "pending")]
    bars = [a for a in doc.find("rect") if a.get("class") == "step"]
    assert len(bars) == 1 and float(bars[0]["width"]) > 0
    text = report.render_text(job)
    assert "status running" in text and "deployed 0/3" in text


@pytest.mark.parametrize(
    "job",
    [
        {},
        {"job_id": "x"},
        {"nodes": {"n1": None}, "plan": None, "params": None, "load": None},
        {"nodes": {"n1": {"steps": [{"step": "deploy"}, {"start": "bad"}, "junk"]}}},
        {"created": "nope", "updated": 1e30, "nodes": {"n1": {"timings": {"total": None}}}},
    ],
)
def test_minimal_and_malformed_jobs_do_not_crash(job):
    assert '<section id="nodes">' in report.render_html(job)
    assert report.render_text(job).endswith("\n")
    assert report.gantt_svg(job).startswith("<svg")


def test_render_does_not_mutate_job():
    job = sample_job()
    before = copy.deepcopy(job)
    report.render_html(job)
    report.render_text(job)
    assert job == before


# --- text --------------------------------------------------------------------------------------


def test_text_table_rows_summary_and_load():
    text = report.render_text(sample_job())
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("node "))
    rows = lines[header + 2 : header + 5]
    assert [r.split("|")[0].strip() for r in rows] == ["cass1", "cass2", "cass3"]
    assert f"{OLD[0][:16]} -> {NEW[0][:16]}" in rows[0]
    assert OLD[0][:17] not in rows[0]
    assert "rolled_back" in rows[2] and "TLS handshake failed" in rows[2]
    assert "4.15" in rows[2]
    # Columns line up: every row has its separators at the same offsets as the header.
    seps = [i for i, ch in enumerate(lines[header]) if ch == "|"]
    for row in rows:
        assert [i for i, ch in enumerate(row) if ch == "|"][: len(seps)] == seps
    assert "status halted  wall 41.5s  deployed 2/3" in text
    assert "load before: ops=1200 failed=0 ops/s=120.0 p50=2.1ms p99=9.8ms" in text
    assert "load during: ops=3600 failed=3" in text


# --- write_report ------------------------------------------------------------------------------


def test_write_report_atomic_mode_and_content(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old report")
    old_umask = os.umask(0o077)
    try:
        assert report.write_report(sample_job(), str(target)) == str(target)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert target.read_text(encoding="utf-8") == report.render_html(sample_job())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_write_report_failure_leaves_target_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old report")

    def boom(src, dst):
        raise OSError("replace failed")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CommandExecutionError, match="replace failed"):
        report.write_report(sample_job(), str(target))
    assert target.read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
