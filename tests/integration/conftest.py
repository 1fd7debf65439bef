"""One real rig per test session: 3 Cassandra 5.0 JVMs with client + internode TLS, a
salt-master and one salt-minion per node — the same ``sandbox.Rig`` that ``python -m sandbox up``
uses. Nothing here is mocked, and nothing is skipped: a missing Java or jar fails the session.

Set ``CERTDEPLOY_TEST_RIG=/tmp/cdsb`` to run against an already running sandbox (fast iteration);
it is then left running.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import salt.config
from saltfactories.cli.run import SaltRun
from saltfactories.cli.salt import Salt

from sandbox.cassandra import check_runtime
from sandbox.rig import Rig
from sandbox.salt_rig import BIN


@pytest.fixture(scope="session")
def rig():
    reuse = os.environ.get("CERTDEPLOY_TEST_RIG")
    if reuse:
        yield Rig.from_descriptor(Path(reuse))
        return
    check_runtime()
    # Short root: Salt's IPC socket paths must stay under the AF_UNIX limit.
    # cass2 is also served through salt-ssh as cass2-ssh (a real sshd); its minion stays, so
    # the other modules are unchanged, and only salt/etc-ssh's master config names the roster.
    the_rig = Rig(Path(f"/tmp/cdt{os.getpid()}"), ssh=1, ssh_beside=True)
    started = time.monotonic()
    try:
        the_rig.up(log=lambda msg: print(f"[rig] {msg}"))
        print(f"[rig] up in {time.monotonic() - started:.1f}s")
        yield the_rig
    finally:
        the_rig.down(log=lambda msg: print(f"[rig] {msg}"))


@pytest.fixture(scope="session")
def master_opts(rig):
    return salt.config.master_config(str(rig.salt_config_dir / "master"))


@pytest.fixture(scope="session")
def salt_cli(master_opts):
    """pytest-salt-factories' ``salt`` CLI wrapper bound to the rig's master (JSON output)."""
    return Salt(script_name=str(BIN / "salt"), config=master_opts, timeout=120)


@pytest.fixture(scope="session")
def salt_run_cli(master_opts):
    return SaltRun(script_name=str(BIN / "salt-run"), config=master_opts, timeout=600)


@pytest.fixture(scope="session")
def synced(rig, salt_cli):
    """Custom modules, states and utils synced to every minion, as production does."""
    ret = salt_cli.run("saltutil.sync_all", minion_tgt="*")
    assert ret.returncode == 0, ret
    return ret.data


class EventBus:
    """Every event on the master bus, collected by a background listener, for tests that
    wait for a tag or scan all traffic (key hygiene)."""

    def __init__(self, opts):
        self.opts = opts
        self.events: list[dict] = []
        self._start()

    def _start(self):
        import threading

        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def restart(self):
        """Reconnect to the master's bus (after the fault suite restarted the master)."""
        self.stop()
        self._start()

    def _listen(self):
        import salt.utils.event

        bus = salt.utils.event.get_master_event(self.opts, self.opts["sock_dir"], listen=True)
        bus.subscribe("")
        self._ready.set()
        try:
            while not self._stop.is_set():
                event = bus.get_event(wait=0.5, full=True, no_block=False)
                if event:
                    event["received"] = time.time()
                    self.events.append(event)
        finally:
            bus.destroy()

    def since(self, started: float, prefix: str = "") -> list[dict]:
        return [
            e
            for e in list(self.events)
            if e["received"] >= started and e.get("tag", "").startswith(prefix)
        ]

    def wait_for(self, prefix: str, started: float, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.since(started, prefix)
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no event {prefix!r} within {timeout}s")

    def stop(self):
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="session")
def event_bus(master_opts):
    bus = EventBus(master_opts)
    yield bus
    bus.stop()


@pytest.fixture(scope="module", autouse=True)
def known_rig(rig):
    """Every integration module starts from the rig as ``up`` left it (issued certificates
    served and trusted, plain pillar, empty store, no lock or queue), whatever ran before;
    so the modules run in any order. ``sandbox/reset.py`` proves it from outside."""
    from sandbox.reset import reset

    reset(rig, log=lambda msg: print(f"\n{msg}"))
    issued = {n["name"]: n["issued_fingerprint"] for n in rig.descriptor()["nodes"]}
    served = rig.served_fingerprints()
    assert served == {name: {"client": fp, "internode": fp} for name, fp in issued.items()}
