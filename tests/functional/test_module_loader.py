"""The execution module and state through real Salt loaders (pytest-salt-factories'
``Loaders``), on a node directory with real stores and a real cassandra.yaml but no JVM:
the pure steps, and every bad input refused before a byte changes."""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import pytest
import salt.config
import salt.loader
import salt.utils.args
from certdeploy_core import pillar_file
from salt.exceptions import CommandExecutionError, SaltInvocationError
from saltfactories.utils.functional import Loaders

from sandbox import pki
from sandbox.rig import Rig
from tests.integration.test_bad_input import CASE_NAMES, _cases

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def offline_rig(tmp_path_factory):
    """The sandbox's own PKI, stores, yaml and pillar, written to disk; nothing started."""
    rig = Rig(tmp_path_factory.mktemp("rig"))
    rig.issue_pki()
    for node in rig.all_nodes():
        node.write_config(rig.tls_sections(node))
    return rig


def offline_pillar(rig, target=None, extra=None) -> dict:
    """Node 2's sandbox pillar, made harmless: no port and no nodetool reach a live node,
    even if a sandbox happens to run on this machine."""
    pillar = rig.pillar_for(rig.node(2))
    node = pillar["certdeploy"]["targets"]["cassandra"]
    node.update(client_port=1, internode_port=1, verify_timeout=1, **(target or {}))
    node["control"] = {"nodetool": ["false"], "start": ["false"], "stop": ["false"]}
    pillar["certdeploy"].update(extra or {})
    return pillar


@pytest.fixture
def make_loaders(offline_rig, tmp_path):
    def make(target=None, extra=None, test=False):
        opts = salt.config.minion_config(None)
        opts.update(
            id="cass2",
            file_client="local",
            test=test,
            cachedir=str(tmp_path / "cache"),
            pillar_roots={"base": [str(tmp_path / "no-pillar")]},
            module_dirs=[str(REPO / "_modules")],
            states_dirs=[str(REPO / "_states")],
            utils_dirs=[str(REPO / "_utils")],
            pillar=offline_pillar(offline_rig, target, extra),
        )
        return Loaders(opts)

    return make


@pytest.fixture
def loaders(make_loaders):
    return make_loaders()


def tree(rig) -> dict:
    home = rig.node(2).home
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


def good_bundle(rig):
    return pki.bundle_dict(rig.issuing_ca().issue_node(2, key_type="ec256"), rig.root_ca().cert)


CHANGING = (
    "validate backup install configure activate verify rollback deploy trust_update plan recover"
)
LOOKING = "peer_info status health targets describe bundle_public ring keyspaces facts health_gate "
LOOKING += "compliance"


def test_every_public_function_has_a_cli_example(loaders):
    """One ``certdeploy`` module from two files: _modules/certdeploy.py (what changes a
    target) and _modules/certdeploy_inspect.py (what only looks), merged by Salt's loader."""
    funcs = [name for name in loaders.modules if name.startswith("certdeploy.")]
    assert set(funcs) == {f"certdeploy.{n}" for n in (CHANGING + " " + LOOKING).split()}
    for name in funcs:
        doc = loaders.modules[name].__doc__ or ""
        assert "CLI Example:" in doc and "salt " in doc, name


def test_no_function_takes_key_material_as_an_argument(loaders):
    """A job argument lands in the master's job cache: material comes from pillar only."""
    import inspect

    for name in ("validate", "install", "deploy", "plan", "trust_update"):
        params = inspect.signature(getattr(loaders.modules.certdeploy, name)).parameters
        assert not {"bundle", "key", "key_pem", "pkcs12"} & set(params), (name, params)


def test_validate_backup_install_configure_plan(make_loaders, offline_rig):
    bundle = good_bundle(offline_rig)
    loaders = make_loaders(extra={"bundle": bundle})
    mod = loaders.modules.certdeploy
    report = mod.validate(skip_cross_trust=True)
    assert report["valid"], report["findings"]
    assert [f["check"] for f in report["findings"]][:2] == ["chain", "key_match"]

    plan = mod.plan()
    assert plan["method"] == "reload" and plan["config_changes"] == []
    assert plan["files"] == [str(offline_rig.keystore_path(offline_rig.node(2)))]

    backup = mod.backup()
    assert backup["files"] == ["config", "keystore", "truststore"]
    first = mod.install()
    assert first["written"] and first["changed"] == plan["files"]
    again = mod.install()  # idempotent: same material, no write
    assert again == {"changed": [], "written": False}
    assert mod.configure(test=True)["changes"] == []
    on_disk = mod.status()["on_disk"]["keystore"]
    assert on_disk["fingerprint"] == report["fingerprint"]
    assert mod.targets() == ["cassandra"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_refused_before_any_change(name, make_loaders, offline_rig):
    bundle, target, _kwargs, words = _cases(offline_rig)[name]
    loaders = make_loaders(target=target, extra={"bundle": bundle})
    before = tree(offline_rig)
    with pytest.raises(SaltInvocationError) as err:
        loaders.modules.certdeploy.deploy(skip_cross_trust=True)
    message = str(err.value)
    assert "cass2" in message and "Fix" in message, message
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    assert tree(offline_rig) == before


@pytest.fixture(params=(True, False), ids=("test", "real"))
def testmode(request):
    return request.param


def test_state_previews_honestly_and_reports_what_ran(make_loaders, offline_rig, testmode):
    """``test=True``: the real diff, nothing changed. ``test=False`` with no JVM behind the
    node: deploy runs, activation fails, the rollback restores every file, and the state says
    which steps ran and what was restored (the restored node cannot be proven serving here)."""
    bundle = good_bundle(offline_rig)
    loaders = make_loaders(extra={"bundle": bundle}, test=testmode)
    keystore = offline_rig.keystore_path(offline_rig.node(2))
    before = tree(offline_rig)
    ret = loaders.states.certdeploy.deployed("tls", skip_cross_trust=True)
    new = pki.x509.load_pem_x509_certificate(bundle["cert"].encode())
    new_fp = new.fingerprint(pki.hashes.SHA256()).hex()
    assert (ret.result is None) is testmode, ret.comment
    if testmode:
        assert ret.changes["fingerprint"]["new"] == new_fp
        assert ret.changes["method"] == "reload"
        assert tree(offline_rig) == before
        return
    assert ret.result is False
    assert ret.changes["failed_step"] == "activate"
    assert ret.changes["done"] == ["validate", "backup", "install", "configure"]
    assert (
        ret.changes["undone"].startswith("restored backup ")
        and str(keystore) in ret.changes["undone"]
    )
    assert ret.changes["rollback_verified"] is False
    after = tree(offline_rig)
    assert after[str(keystore)] == before[str(keystore)]  # the old keystore is back


def test_every_runner_function_has_a_cli_example(tmp_path):
    """The master side too: every public runner function, loaded by Salt's runner loader."""
    opts = salt.config.master_config(None)
    opts.update(
        cachedir=str(tmp_path / "master-cache"),
        runner_dirs=[str(REPO / "_runners")],
        utils_dirs=[str(REPO / "_utils")],
    )
    runners = salt.loader.runner(opts, utils=salt.loader.utils(opts))
    funcs = [name for name in runners if name.startswith("certdeploy.")]
    assert len(funcs) >= 12, funcs
    for name in funcs:
        doc = runners[name].__doc__ or ""
        assert "CLI Example:" in doc and "salt-run " in doc, name


# ----------------------------------------------------------------------------- agentless
# The salt-ssh hand-over: a module whose ``__pillar__`` is empty (``salt-call --local`` on a
# salt-ssh target) works from the wrapper's pillar file, deletes it on read, refuses a file
# others could read (and still deletes it), and ignores it when it has its own pillar.

WRAPPED = (
    "describe validate plan deploy rollback status peer_info ring keyspaces health_gate "
    "trust_update compliance bundle_public"
).split()


def ship(tmp_path, rig, **extra):
    return pillar_file.write_local(
        str(tmp_path / "ship"), pillar_file.payload(offline_pillar(rig, extra=extra))
    )


def test_the_pillar_file_hand_over(make_loaders, offline_rig, tmp_path):
    """One loader for the whole hand-over (a loader costs seconds)."""
    loaders = make_loaders()
    mod = loaders.modules.certdeploy
    for name in WRAPPED:  # every public function takes pillar_file=
        spec = salt.utils.args.get_function_argspec(loaders.modules[f"certdeploy.{name}"])
        assert "pillar_file" in spec.args, name

    # The loader's own pillar has certdeploy: the file is deleted unread.
    path = ship(tmp_path, offline_rig, bundle=good_bundle(offline_rig))
    mod.targets(pillar_file=path)
    assert not os.path.exists(path)

    # An empty pillar (salt-call --local over salt-ssh): the file's pillar, read once.
    loaders.opts["pillar"].clear()
    before = tree(offline_rig)
    leaf = offline_rig.issuing_ca().issue_node(2, key_type="ec256")
    path = ship(tmp_path, offline_rig, bundle=pki.bundle_dict(leaf, offline_rig.root_ca().cert))
    planned = mod.plan(pillar_file=path)
    assert not os.path.exists(path)
    assert planned["new_fingerprint"] == leaf.fingerprint
    assert tree(offline_rig) == before
    with pytest.raises(CommandExecutionError, match="cannot open"):
        mod.plan(pillar_file=path)  # one call, one file
    with pytest.raises(SaltInvocationError, match="certdeploy:targets:cassandra is missing"):
        mod.describe()  # and the pillar lived for that call only

    # A file others could read is refused, and deleted all the same.
    path = ship(tmp_path, offline_rig)
    os.chmod(path, 0o644)
    with pytest.raises(CommandExecutionError, match="mode 0644, must be 0600"):
        mod.describe(pillar_file=path)
    assert not os.path.exists(path)


def test_the_wrapper_exposes_what_the_runner_calls_each_with_a_cli_example():
    tree_ = ast.parse((REPO / "_wrapper" / "certdeploy.py").read_text())
    public = {
        node.name: ast.get_docstring(node) or ""
        for node in tree_.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }
    assert set(WRAPPED) <= set(public)
    for name, doc in public.items():
        assert "CLI Example:" in doc and "salt-ssh" in doc, name
