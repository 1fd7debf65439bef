"""The ``cqlsh`` profile's pure parts: its pillar, the cqlshrc sections it owns (kept idempotent,
other sections preserved, a real diff under test=True) and the parsing of cqlsh's table. Its
verification runs a real cqlsh on the rig (``tests/integration/test_cqlsh_target.py``)."""

from __future__ import annotations

import configparser
import os

import pytest
from certdeploy_core import cqlsh, node
from certdeploy_core import target as certdeploy_target
from salt.exceptions import CommandExecutionError, SaltInvocationError


def _pillar(tmp_path, **overrides):
    target = {
        "profile": "cqlsh",
        "app": "ops",
        "keystore": str(tmp_path / "ops.pem"),
        "truststore": str(tmp_path / "ca.pem"),
        "cqlshrc": str(tmp_path / "cassandra" / "cqlshrc"),
        "cqlsh": ["/usr/bin/cqlsh"],
        "owner": None,
        "group": None,
        "identity": "spiffe://prod/ops/{generation}",
        "role": "ops_{generation}",
        "contact_points": ["127.0.0.1:9042"],
        "backup_dir": str(tmp_path / "backups"),
        "verify_client": {"cert": str(tmp_path / "reader.crt"), "key": str(tmp_path / "r.key")},
        **overrides,
    }
    return {"certdeploy": {"targets": {"ops": target}}}


def _load(tmp_path, **overrides):
    return certdeploy_target.load_target(_pillar(tmp_path, **overrides), "ops", "ops1")


def test_pillar_builds_a_cqlsh_target_whose_cqlshrc_is_backed_up(tmp_path):
    target = _load(tmp_path)
    assert (target.profile, target.method, target.cqlsh) == ("cqlsh", "none", ("/usr/bin/cqlsh",))
    assert target.managed_files()["config"] == target.cqlshrc == target.config_file
    assert node.resolve_method(target, "auto", True) == "none"
    with pytest.raises(SaltInvocationError, match="nothing to activate"):
        node.resolve_method(target, "restart", False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"store_type": "pkcs12", "keystore_password": "x", "truststore_password": "x"}, "PEM"),
        ({"cqlshrc": None}, r"cqlshrc: missing"),
        ({"cqlshrc": "relative/cqlshrc"}, "cqlshrc"),
        ({"cqlsh": []}, r"cqlsh: empty"),
    ],
)
def test_bad_pillar_is_refused_with_the_key_and_the_fix(tmp_path, overrides, message):
    with pytest.raises(SaltInvocationError, match=message):
        _load(tmp_path, **overrides)


def test_configure_owns_its_sections_keeps_the_rest_and_is_idempotent(tmp_path):
    target = _load(tmp_path)
    os.makedirs(os.path.dirname(target.cqlshrc))
    with open(target.cqlshrc, "w") as handle:
        handle.write(
            "[connection]\nhostname = 10.0.0.11\n[ui]\ncolor = on\n[ssl]\nvalidate = false\n"
        )
    before = open(target.cqlshrc).read()

    preview = cqlsh.configure(target, test=True)
    assert open(target.cqlshrc).read() == before and preview["written"] is False
    changed = {(c["section"], c["key"]): (c["old"], c["new"]) for c in preview["changes"]}
    assert changed[("ssl", "validate")] == ("false", "true")
    assert changed[("ssl", "usercert")] == (None, target.keystore)
    assert changed[("auth_provider", "mechanism")] == (None, "EXTERNAL")

    assert cqlsh.configure(target)["written"] is True
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(target.cqlshrc)
    assert parser.get("connection", "hostname") == "10.0.0.11" and parser.get("ui", "color") == "on"
    assert parser.get("ssl", "certfile") == target.truststore
    assert parser.get("auth_provider", "classname") == "SaslAuthProvider"
    assert os.stat(target.cqlshrc).st_mode & 0o777 == 0o600
    assert cqlsh.configure(target) == {"changes": [], "restart_required": False, "written": False}


def test_a_cqlshrc_that_does_not_parse_is_refused_unchanged(tmp_path):
    target = _load(tmp_path)
    os.makedirs(os.path.dirname(target.cqlshrc))
    with open(target.cqlshrc, "w") as handle:
        handle.write("usercert = no section\n")
    with pytest.raises(CommandExecutionError, match=r"ops1: .*cqlshrc: not a valid cqlshrc"):
        cqlsh.configure(target)
    assert open(target.cqlshrc).read() == "usercert = no section\n"


def test_roles_in_reads_cqlsh_table_output():
    out = "\n username\n----------\n   ops_g2\n   reader\n   ops_g2\n\n(3 rows)\n"
    assert cqlsh.roles_in(out) == ["ops_g2", "reader", "ops_g2"]
    assert cqlsh.roles_in("Connection error: ...") == []
