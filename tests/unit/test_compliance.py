"""The fleet side of compliance: gathering answers, the table and the escaped HTML."""

from __future__ import annotations

import os

from certdeploy_core import compliance


def test_gather_table_and_html_escape_what_nodes_say(tmp_path):
    answers = {
        "cass1": {
            "node": "cass1",
            "ok": False,
            "findings": [
                compliance.finding("served", True, "expected a, served a"),
                compliance.finding("issuer", False, "issuer <script>alert(1)</script>"),
            ],
        },
        "cass2": "Minion did not return. [No response]",
    }
    nodes = compliance.gather(["cass1", "cass2"], answers)
    assert nodes["cass2"]["findings"] == [
        {"check": "answer", "ok": False, "message": "Minion did not return. [No response]"}
    ]
    assert [f["node"] for f in compliance.failures(nodes)] == ["cass1", "cass2"]
    assert "cass1   issuer" in compliance.table(nodes)
    path = compliance.write_html(nodes, str(tmp_path / "r" / "compliance.html"))
    page = open(path).read()
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "2 finding(s) across 2 node(s)" in page
    assert os.stat(path).st_mode & 0o777 == 0o644
