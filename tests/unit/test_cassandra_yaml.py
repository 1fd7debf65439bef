import difflib
import os
import stat

import pytest
import yaml
from certdeploy_core import cassandra_yaml as cy
from salt.exceptions import CommandExecutionError, SaltInvocationError

NODE = "cass1"

# Shaped like Cassandra 5.0's stock conf/cassandra.yaml (abridged), plus an operator's edit with
# a different sequence indent (data_file_directories) that must survive untouched.
STOCK = """\
# Cassandra storage config YAML

# NOTE:
#   See https://cassandra.apache.org/doc/latest/configuration/ for
#   full explanations of configuration directives
# /NOTE

# The name of the cluster. This is mainly used to prevent machines in
# one logical cluster from joining another.
cluster_name: 'Test Cluster'

num_tokens: 16

# Directories where Cassandra should store data on disk.
data_file_directories:
    - /var/lib/cassandra/data

seed_provider:
  # Addresses of hosts that are deemed contact points.
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      # Seeds is actually a comma-delimited list of addresses.
      # Ex: "<ip1>,<ip2>,<ip3>"
      - seeds: "127.0.0.1:7000"

commitlog_sync: periodic
commitlog_sync_period: 10000ms   # how often to fsync
storage_port: 7000

# Configure server-to-server internode encryption
#
# Step 1: Set internode_encryption=<dc|rack|all> and explicitly set optional=true.
# Step 2: Set optional=false (or remove it). Restart all nodes
server_encryption_options:
  # On outbound connections, determine which type of peers to securely connect to.
  #     none : Do not encrypt outgoing connections
  #     all  : Always use encrypted connections
  internode_encryption: all
  # optional: true
  legacy_ssl_storage_port_enabled: false
  # Set to a valid keystore if internode_encryption is dc, rack or all
  keystore: /etc/cassandra/tls/keystore.p12
  keystore_password: "old-secret-1"
  # Verify peer server certificates
  require_client_auth: true
  # Set to a valid trustore if require_client_auth is true
  truststore: /etc/cassandra/tls/truststore.p12
  truststore_password: old-trust-1
  # Verify that the host name in the certificate matches the connected host
  require_endpoint_verification: false
  store_type: PKCS12
  # More advanced defaults:
  # protocol: TLS
  # cipher_suites: [
  #   TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  # ]

# Configure client-to-server encryption.
#
# **NOTE** this default configuration is an insecure configuration.
client_encryption_options:
  # Enable client-to-server encryption
  enabled: true
  # optional: true
  keystore: /etc/cassandra/tls/keystore.p12
  keystore_password: "old-secret-1"
  # Verify client certificates
  require_client_auth: false
  # More advanced defaults:
  # protocol: TLS
  # store_type: JKS

# internode_compression controls whether traffic between nodes is
# compressed.
internode_compression: dc
auto_snapshot: true
"""

CURRENT = {
    "server_encryption_options": {
        "internode_encryption": "all",
        "keystore": "/etc/cassandra/tls/keystore.p12",
        "keystore_password": "old-secret-1",
        "truststore": "/etc/cassandra/tls/truststore.p12",
        "truststore_password": "old-trust-1",
        "store_type": "PKCS12",
        "require_client_auth": True,
    },
    "client_encryption_options": {
        "enabled": True,
        "keystore": "/etc/cassandra/tls/keystore.p12",
        "keystore_password": "old-secret-1",
    },
}


def _diff(old: str, new: str) -> tuple[list[str], list[str]]:
    """(removed lines, added lines) between two texts."""
    removed, added = [], []
    for line in difflib.ndiff(old.splitlines(True), new.splitlines(True)):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def _is_subsequence(needles, haystack) -> bool:
    rest = iter(haystack)
    return all(any(n == h for h in rest) for n in needles)


def _others(text: str) -> dict:
    data = yaml.safe_load(text)
    return {k: v for k, v in data.items() if k not in cy.SECTIONS}


def test_no_op_returns_identical_text():
    result = cy.plan(STOCK, CURRENT)
    assert result == {"changes": [], "restart_required": False, "new_text": STOCK}
    assert result["new_text"] is STOCK


def test_unquoted_yaml11_booleans_already_match():
    # Cassandra (SnakeYAML, YAML 1.1) reads "yes" as true: not a change.
    text = "client_encryption_options:\n  enabled: yes\n"
    assert cy.plan(text, {"client_encryption_options": {"enabled": True}})["changes"] == []


def test_changed_value_touches_only_its_line():
    desired = {"server_encryption_options": {"keystore": "/etc/cassandra/tls/keystore-2026.p12"}}
    result = cy.plan(STOCK, desired)
    assert result["changes"] == [
        {
            "section": "server_encryption_options",
            "key": "keystore",
            "old": "/etc/cassandra/tls/keystore.p12",
            "new": "/etc/cassandra/tls/keystore-2026.p12",
        }
    ]
    assert result["restart_required"] is True
    removed, added = _diff(STOCK, result["new_text"])
    assert removed == ["  keystore: /etc/cassandra/tls/keystore.p12\n"]
    assert added == ["  keystore: /etc/cassandra/tls/keystore-2026.p12\n"]
    # The client section's identical line is not touched.
    assert result["new_text"].count("  keystore: /etc/cassandra/tls/keystore.p12\n") == 1


def test_password_change_is_hidden_restart_required_and_keeps_quotes():
    desired = {
        "server_encryption_options": {"keystore_password": "new-secret-2"},
        "client_encryption_options": {"keystore_password": "new-secret-2"},
    }
    result = cy.plan(STOCK, desired)
    assert result["restart_required"] is True
    assert [(c["section"], c["old"], c["new"]) for c in result["changes"]] == [
        ("server_encryption_options", "<hidden>", "<hidden>"),
        ("client_encryption_options", "<hidden>", "<hidden>"),
    ]
    assert "secret" not in repr(result["changes"])
    removed, added = _diff(STOCK, result["new_text"])
    assert removed == ['  keystore_password: "old-secret-1"\n'] * 2
    assert added == ['  keystore_password: "new-secret-2"\n'] * 2
    assert cy.plan(result["new_text"], desired)["changes"] == []


def test_nested_secret_values_are_hidden():
    factory = {
        "class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory",
        "parameters": {"private_key_password": "pem-secret"},
    }
    result = cy.plan(STOCK, {"server_encryption_options": {"ssl_context_factory": factory}})
    assert result["changes"][0]["new"] == {
        "class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory",
        "parameters": {"private_key_password": "<hidden>"},
    }
    assert "pem-secret" not in repr(result["changes"])
    assert (
        yaml.safe_load(result["new_text"])["server_encryption_options"]["ssl_context_factory"]
        == factory
    )


def test_adding_missing_keys_inside_existing_section():
    desired = {
        "server_encryption_options": {
            "protocol": "TLS",
            "accepted_protocols": ["TLSv1.3", "TLSv1.2"],
        }
    }
    result = cy.plan(STOCK, desired)
    new = result["new_text"]
    assert [(c["key"], c["old"]) for c in result["changes"]] == [
        ("protocol", None),
        ("accepted_protocols", None),
    ]
    removed, added = _diff(STOCK, new)
    assert removed == []
    assert added == [
        "  protocol: TLS\n",
        "  accepted_protocols:\n",
        "    - TLSv1.3\n",
        "    - TLSv1.2\n",
    ]
    # Added right after the section's last key, before its trailing comments.
    assert "  store_type: PKCS12\n  protocol: TLS\n" in new
    assert "    - TLSv1.2\n  # More advanced defaults:\n" in new
    assert _others(new) == _others(STOCK)
    section = yaml.safe_load(new)["server_encryption_options"]
    assert section == {
        **CURRENT["server_encryption_options"],
        **desired["server_encryption_options"],
        "legacy_ssl_storage_port_enabled": False,
        "require_endpoint_verification": False,
    }


def test_creating_a_missing_section():
    text = STOCK[: STOCK.index("# Configure client-to-server")]  # ends after a blank line
    text = text.rstrip("\n") + "\nauto_snapshot: true  # keep\n"
    desired = {"client_encryption_options": {"enabled": True, "keystore": "/etc/ks.p12"}}
    result = cy.plan(text, desired)
    new = result["new_text"]
    assert new.startswith(text)
    assert new[len(text) :] == (
        "\nclient_encryption_options:\n  enabled: true\n  keystore: /etc/ks.p12\n"
    )
    assert [c["old"] for c in result["changes"]] == [None, None]
    assert yaml.safe_load(new)["client_encryption_options"] == desired["client_encryption_options"]


def test_filling_an_empty_section_keeps_following_comments_after_it():
    text = "a: 1\nclient_encryption_options:\n# header of b\nb: 2\n"
    result = cy.plan(text, {"client_encryption_options": {"enabled": True}})
    assert result["new_text"] == (
        "a: 1\nclient_encryption_options:\n  enabled: true\n# header of b\nb: 2\n"
    )


def test_comments_around_the_section_line_are_kept_once():
    text = (
        "a:\n"
        "# header of the section\n"
        "client_encryption_options: # eol on the section line\n"
        "  enabled: false\n"
        "# header of b\n"
        "b: 1\n"
    )
    result = cy.plan(text, {"client_encryption_options": {"enabled": True, "protocol": "TLS"}})
    assert result["new_text"] == text.replace(
        "  enabled: false\n", "  enabled: true\n  protocol: TLS\n"
    )


@pytest.mark.parametrize("text", ["", "# nothing configured yet\n", "cluster_name: x"])
def test_sections_added_to_an_almost_empty_file(text):
    desired = {
        "server_encryption_options": {"internode_encryption": "all"},
        "client_encryption_options": {"enabled": True},
    }
    new = cy.plan(text, desired)["new_text"]
    assert new.startswith(text)
    tail = "server_encryption_options:\n  internode_encryption: all\n"
    tail += "\nclient_encryption_options:\n  enabled: true\n"
    assert new.endswith(tail)
    assert {k: v for k, v in (yaml.safe_load(new) or {}).items() if k in cy.SECTIONS} == desired


def test_replacing_a_list_keeps_trailing_comments_and_flow_style():
    text = (
        "server_encryption_options:\n"
        "  protocol: TLS\n"
        "  cipher_suites: [TLS_A, TLS_B]\n"
        "  accepted_protocols:\n"
        "    - TLSv1.2\n"
        "  # trailing comment\n"
        "\n"
        "# next section\n"
        "other: 1\n"
    )
    desired = {
        "server_encryption_options": {
            "cipher_suites": ["TLS_C"],
            "accepted_protocols": ["TLSv1.3"],
        }
    }
    new = cy.plan(text, desired)["new_text"]
    assert new == text.replace("[TLS_A, TLS_B]", "[TLS_C]").replace("TLSv1.2", "TLSv1.3")


def test_end_of_line_comments_and_indent_style_survive():
    text = (
        "data_file_directories:\n"
        "- /data\n"
        "server_encryption_options:\n"
        "  keystore: /a.p12  # rotated yearly\n"
        "  store_type: PKCS12 # last\n"
        "  # trailing\n"
        "x: 1\n"
    )
    desired = {"server_encryption_options": {"keystore": "/b.p12", "cipher_suites": ["TLS_A"]}}
    assert cy.plan(text, desired)["new_text"] == (
        "data_file_directories:\n"
        "- /data\n"
        "server_encryption_options:\n"
        "  keystore: /b.p12  # rotated yearly\n"
        "  store_type: PKCS12 # last\n"
        "  cipher_suites:\n"
        "  - TLS_A\n"
        "  # trailing\n"
        "x: 1\n"
    )


@pytest.mark.parametrize("password", ["on", "no", "0777", "12:30", "1e3", "a#b", "x: y", "'q\""])
def test_ambiguous_strings_are_quoted_for_yaml_11(password):
    desired = {"client_encryption_options": {"truststore_password": password}}
    new = cy.plan(STOCK, desired)["new_text"]
    # PyYAML reads YAML 1.1 like Cassandra's SnakeYAML.
    assert yaml.safe_load(new)["client_encryption_options"]["truststore_password"] == password


def test_crlf_file_keeps_crlf():
    text = STOCK.replace("\n", "\r\n")
    desired = {"client_encryption_options": {"require_client_auth": True, "protocol": "TLS"}}
    new = cy.plan(text, desired)["new_text"]
    assert "\n" not in new.replace("\r\n", "")
    removed, added = _diff(text, new)
    assert removed == ["  require_client_auth: false\r\n"]
    assert added == ["  require_client_auth: true\r\n", "  protocol: TLS\r\n"]


@pytest.mark.parametrize(
    "desired",
    [
        {"server_encryption_options": {"keystore_pasword": "x"}},
        {"client_encryption_options": {"internode_encryption": "all"}},
        {"tls": {"keystore": "/x"}},
        {"server_encryption_options": ["keystore"]},
        ["server_encryption_options"],
    ],
)
def test_bad_desired_is_refused(desired):
    with pytest.raises(SaltInvocationError, match="desired"):
        cy.plan(STOCK, desired)


def test_invalid_yaml_error_names_position_not_secrets():
    text = "client_encryption_options:\n  keystore_password: hunter2\n  keystore_password: x\n"
    with pytest.raises(CommandExecutionError) as err:
        cy.plan(text, CURRENT, where=f"{NODE}: /etc/cassandra/cassandra.yaml")
    message = str(err.value)
    assert message.startswith(f"{NODE}: /etc/cassandra/cassandra.yaml: not valid YAML")
    assert "line 3" in message and "hunter2" not in message


def test_section_that_is_not_a_mapping_is_refused():
    with pytest.raises(CommandExecutionError, match="not a mapping"):
        cy.plan("server_encryption_options: yes\n", CURRENT)


# --- apply / read_tls ---------------------------------------------------------------------------


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "cassandra.yaml"
    path.write_text(STOCK)
    os.chmod(path, 0o640)
    return path


def test_apply_test_mode_writes_nothing(conf):
    desired = {"client_encryption_options": {"require_client_auth": True}}
    result = cy.apply(str(conf), desired, node=NODE, test=True)
    assert result["written"] is False and result["restart_required"] is True
    assert "new_text" not in result and result["path"] == str(conf)
    assert conf.read_text() == STOCK


def test_apply_replans_on_a_hand_edit_made_while_it_planned(conf, monkeypatch):
    """The operator saves the file between certdeploy's read and its write: the edit is kept,
    because certdeploy plans again on the edited text before it replaces the file."""
    real_plan, edits = cy.plan, []

    def plan_then_operator_edits(text, desired, where):
        result = real_plan(text, desired, where=where)
        if not edits:
            edits.append(True)
            conf.write_text(conf.read_text() + "# operator: raised for the batch job\n")
        return result

    monkeypatch.setattr(cy, "plan", plan_then_operator_edits)
    desired = {"client_encryption_options": {"require_client_auth": True}}
    result = cy.apply(str(conf), desired, node=NODE)
    assert result["written"] is True
    text = conf.read_text()
    assert text.endswith("# operator: raised for the batch job\n")
    assert cy.read_tls(str(conf))["client_encryption_options"]["require_client_auth"] is True


def test_apply_writes_atomically_and_keeps_mode(conf):
    desired = {"client_encryption_options": {"require_client_auth": True}}
    result = cy.apply(str(conf), desired, node=NODE)
    assert result["written"] is True
    assert result["changes"][0]["key"] == "require_client_auth"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o640
    assert cy.read_tls(str(conf))["client_encryption_options"]["require_client_auth"] is True
    again = cy.apply(str(conf), desired, node=NODE)
    assert again == {
        "changes": [],
        "restart_required": False,
        "path": str(conf),
        "written": False,
    }


def test_apply_with_explicit_mode(conf):
    desired = {"client_encryption_options": {"require_client_auth": True}}
    cy.apply(str(conf), desired, node=NODE, mode="0600")
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600


def test_apply_missing_file_names_node_and_path(tmp_path):
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(CommandExecutionError) as err:
        cy.apply(path, CURRENT, node=NODE)
    assert str(err.value).startswith(f"{NODE}: {path}: not found")
    assert "Fix:" in str(err.value)


def test_read_tls(conf, tmp_path):
    tls = cy.read_tls(str(conf))
    assert tls["client_encryption_options"]["keystore_password"] == "old-secret-1"
    hidden = cy.read_tls(str(conf), redact=True)
    assert hidden["server_encryption_options"]["keystore_password"] == "<hidden>"
    assert hidden["server_encryption_options"]["internode_encryption"] == "all"
    bare = tmp_path / "bare.yaml"
    bare.write_text("cluster_name: x\n")
    assert cy.read_tls(str(bare)) == {s: {} for s in cy.SECTIONS}
