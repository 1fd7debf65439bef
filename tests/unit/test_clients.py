"""The server-side identity judgement over ``system_views.clients`` rows."""

from __future__ import annotations

from certdeploy_core import clients

OLD, NEW, OTHER = "orders_g1", "orders_g2", "certdeploy_rig"
APP = {OLD, NEW}


def _rows(*roles):
    return [{"address": "127.0.0.1", "port": 50000 + i, "username": r} for i, r in enumerate(roles)]


def test_only_new_role_on_every_host_passes_and_ignores_other_apps():
    seen = {"127.0.0.1": _rows(NEW, NEW, OTHER), "127.0.0.2": _rows(NEW)}
    assert clients.only_under(seen, NEW, APP) == (True, [])
    assert clients.roles(seen, APP) == {"127.0.0.1": {NEW: 2}, "127.0.0.2": {NEW: 1}}


def test_a_connection_left_under_the_old_role_names_the_host():
    seen = {"127.0.0.1": _rows(NEW), "127.0.0.2": _rows(NEW, OLD)}
    ok, problems = clients.only_under(seen, NEW, APP)
    assert not ok
    assert problems == ["127.0.0.2: connections still under {'orders_g1': 1}"]


def test_a_host_without_the_app_or_unreadable_fails():
    seen = {"127.0.0.1": _rows(OTHER), "127.0.0.3": {"error": "NoHostAvailable: down"}}
    ok, problems = clients.only_under(seen, NEW, APP)
    assert not ok
    assert problems[0] == "127.0.0.1: no connection under 'orders_g2' (seen none)"
    assert problems[1].startswith("127.0.0.3: cannot read system_views.clients (NoHostAvailable")
