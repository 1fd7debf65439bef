"""``fresh_pillar=True``: a certdeploy call compiles its own pillar for that call, as
``state.apply`` does, so a direct call or an orchestration step needs no
``saltutil.refresh_pillar`` first. The module's error boundary compiles, uses and drops it,
and never quotes a render error (pillar may hold keys)."""

from __future__ import annotations

import inspect

import pytest
import salt.pillar
from certdeploy_core import face
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from salt.exceptions import CommandExecutionError, SaltClientError

OWN = {"certdeploy": {"bundle": {"fingerprint": "old"}}}
FRESH = {"certdeploy": {"bundle": {"fingerprint": "new"}}}


class Compiler:
    def __init__(self, result, opts):
        self.result, self.opts, self.destroyed = result, opts, False

    def compile_pillar(self):
        self.opts["saltenv"] = None  # what Salt's RemotePillar does to the opts it gets
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def destroy(self):
        self.destroyed = True


@pytest.fixture
def module(monkeypatch):
    """A public function behind the real error boundary, over a Face with its own pillar."""
    opts = {"id": "app001", "saltenv": "base", "pillarenv": None, "grains": {"os": "Debian"}}
    context: dict = {}
    seen = {"compilers": []}

    def get_pillar(opts_, grains, minion_id, saltenv=None, pillarenv=None, **_):
        assert (minion_id, grains, saltenv) == ("app001", {"os": "Debian"}, "base")
        compiler = Compiler(seen["result"], opts_)
        seen["compilers"].append(compiler)
        return compiler

    monkeypatch.setattr(salt.pillar, "get_pillar", get_pillar)

    def make():
        return face.Face(opts, OWN, context, {})

    def fingerprint(target="app"):
        return make().settings()["bundle"]["fingerprint"]

    seen.update(call=face.public(fingerprint, make), opts=opts, context=context)
    return seen


def test_a_fresh_call_reads_the_compiled_pillar_and_leaves_nothing_behind(module):
    module["result"] = FRESH
    assert module["call"](fresh_pillar=True) == "new"
    assert module["call"]() == "old"  # without it, the minion's own pillar
    (compiler,) = module["compilers"]
    assert compiler.destroyed
    assert module["context"] == {}  # one call, one pillar
    assert module["opts"]["saltenv"] == "base"  # the compiler got a copy of the opts
    assert "fresh_pillar" in inspect.signature(module["call"]).parameters  # Salt checks it


def test_a_pillar_with_render_errors_is_refused_without_quoting_them(module):
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    module["result"] = {"_errors": [f"Rendering SLS 'keys' failed near: {key.decode()}"]}
    with pytest.raises(CommandExecutionError) as raised:
        module["call"](fresh_pillar=True)
    message = str(raised.value)
    assert message.startswith("app001: its pillar did not compile on the master (1 error(s))")
    assert "pillar.show_pillar app001" in message and "PRIVATE KEY" not in message
    assert module["context"] == {}


def test_a_master_that_does_not_answer_is_a_command_execution_error(module):
    module["result"] = SaltClientError("Pillar timed out after 60 seconds")
    with pytest.raises(CommandExecutionError, match=r"^app001: could not compile .* Fix: "):
        module["call"](fresh_pillar=True)
    assert module["compilers"][0].destroyed
