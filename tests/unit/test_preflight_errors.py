"""The runner's pre-flight turns a minion's raw answer into a problem an operator can act on."""

from __future__ import annotations

from pathlib import Path

from certdeploy_core import preflight

REPO = Path(__file__).resolve().parents[2]


def test_a_minion_without_the_extension_gets_the_sync_fix():
    message = preflight.explain("'certdeploy.describe' is not available.")
    assert message.startswith("'certdeploy.describe' is not available.")
    assert message.endswith("Fix: salt '*' saltutil.sync_all")


def test_other_answers_are_kept_or_named():
    assert preflight.explain("cass2: keystore: missing") == "cass2: keystore: missing"
    assert preflight.explain(None) == "no answer (None)"
    assert preflight.explain(False) == "no answer (False)"
