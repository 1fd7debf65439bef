"""The agentless transport: salt-ssh targets from the master's roster (see :mod:`.transport`).

Calls go through ``salt.client.ssh.client.SSHClient.cmd_iter``. Every ``certdeploy.*``
function is routed to the master-side wrapper (``_wrapper/certdeploy.py``), which ships the
target's pillar as a private file for that one call. salt-ssh has no event bus on the target,
so the wrapper fires the ``certdeploy/node/<id>/<outcome>`` event a minion would have sent, on
the master, from the call's return (:func:`node_event_for`). This transport answers
``saltutil.refresh_pillar`` itself: salt-ssh compiles pillar on the master for every call, and
the remote function hangs.

Failures of the SSH layer become one line that names the target, its host and port, what
failed and the fix.
"""

from __future__ import annotations

import os

from .result import node_event

NODE_EVENTS = {"certdeploy.deploy", "certdeploy.trust_update", "certdeploy.rollback"}
NOT_REMOTE = {"saltutil.refresh_pillar": True}


def configured(opts: dict) -> bool:
    """A master reaches salt-ssh targets when its roster file exists."""
    return os.path.isfile(roster_file(opts))


def roster_file(opts: dict) -> str:
    if opts.get("roster_file"):
        return opts["roster_file"]
    return os.path.join(os.path.dirname(opts.get("conf_file") or "/etc/salt/master"), "roster")


class SSHTransport:
    """salt-ssh targets named by the roster."""

    name = "ssh"
    cost = 1  # a wrapper call costs seconds (thin check, pillar copy, remote salt-call)

    def __init__(self, opts: dict, max_procs: int = 25):
        self.opts = opts
        self.max_procs = max_procs
        self.hosts: dict[str, dict] = {}

    def _roster_targets(self, tgt, tgt_type: str) -> dict:
        import salt.roster

        opts = {**self.opts, "roster_file": roster_file(self.opts)}
        targets = salt.roster.Roster(opts, opts.get("roster") or "flat").targets(tgt, tgt_type)
        self.hosts.update(targets)
        return targets

    def expected(self, tgt, tgt_type: str) -> list[str]:
        return sorted(self._roster_targets(tgt, tgt_type))

    def where(self, target_id: str) -> str:
        entry = self.hosts.get(target_id) or {}
        return f"{target_id} ({entry.get('host', '?')}:{entry.get('port', 22)})"

    def call(self, ids: list[str], fun: str, kwargs: dict, timeout: float) -> dict:
        if fun in NOT_REMOTE:
            return {target_id: NOT_REMOTE[fun] for target_id in ids}
        from salt.client.ssh.client import SSHClient

        client = SSHClient(mopts=self.opts)
        answers = {}
        for ret in client.cmd_iter(
            list(ids),
            fun,
            kwarg=dict(kwargs),
            tgt_type="list",
            ssh_max_procs=min(self.max_procs, max(1, len(ids))),
        ):
            for target_id, data in ret.items():
                answers[target_id] = self.answer(target_id, data)
        return answers

    def answer(self, target_id: str, data) -> object:
        """The function's return, or one line saying why there is none."""
        if isinstance(data, dict) and "return" in data and not _ssh_failed(data):
            ret = data["return"]
            if isinstance(ret, dict) and set(ret) == {"local"} and isinstance(ret["local"], str):
                return ret["local"]  # salt-ssh's own wrapper error
            return ret
        return ssh_error(self.where(target_id), data, self.opts)


def node_event_for(target_id: str, fun: str, ret: dict) -> tuple[str, dict]:
    """``(tag, data)`` of the event the minion's ``certdeploy.<fun>`` would have fired,
    shaped like a minion's event (``id``, ``data``)."""
    if fun == "certdeploy.rollback":
        outcome = "rolled_back" if ret.get("verified") else "failed"
        data = {"outcome": outcome, "backup_id": ret.get("backup_id")}
    else:
        outcome, data = node_event(ret)
    data = {"target": ret.get("target"), "node": ret.get("node") or target_id, **data}
    return f"certdeploy/node/{target_id}/{outcome}", {
        "id": target_id,
        "transport": "ssh",
        "data": data,
    }


def _ssh_failed(data: dict) -> bool:
    return data.get("retcode") == 255 or "_error" in data and "return" not in data


def ssh_error(where: str, data, opts: dict) -> str:
    """What went wrong below certdeploy (ssh, the shim, the thin), and the fix."""
    if not isinstance(data, dict):
        return f"{where}: no answer ({data!r}). Fix: check the roster entry and its sshd"
    text = " ".join(str(data.get(k) or "") for k in ("stderr", "stdout", "_error", "return"))
    known_hosts = opts.get("known_hosts_file") or "~/.ssh/known_hosts"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
        return (
            f"{where}: host key verification failed: the key it presents does not match "
            f"known_hosts_file {known_hosts}. Nothing was sent. Fix: if the host was rebuilt, "
            f"check its new key out of band and replace its line in {known_hosts}; otherwise "
            "treat it as an attack"
        )
    if "host key needs to be accepted" in text or "authenticity of host" in text:
        return (
            f"{where}: its host key is not in known_hosts_file {known_hosts}. Nothing was "
            f"sent. Fix: add the verified key to {known_hosts}"
        )
    for marker in ("Connection refused", "timed out", "No route to host", "Could not resolve"):
        if marker in text:
            return (
                f"{where}: ssh: {marker}. Nothing was sent. Fix: check the roster entry's "
                "host and port, and that sshd runs there"
            )
    if "Permission denied" in text:
        return (
            f"{where}: ssh: permission denied for the roster user. Fix: check the roster "
            "entry's user and priv, and the target's authorized_keys"
        )
    last = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["no output"]
    target_id = where.split()[0]
    return (
        f"{where}: salt-ssh call failed: {last[0][:300]}. "
        f"Fix: run salt-ssh -l debug {target_id} test.ping"
    )
