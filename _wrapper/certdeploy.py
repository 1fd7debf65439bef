"""certdeploy over salt-ssh: the master-side wrapper of the ``certdeploy`` execution module.

A plain module call over salt-ssh runs ``salt-call --local`` on the target, whose
``__pillar__`` is empty. Each function here instead takes this target's ``certdeploy`` pillar
as the master compiled it (ext_pillar, i.e. the cert store, included), writes it to a 0600 file
in a 0700 directory, copies it into the target's 0700 thin dir, runs the real
``certdeploy.<function>`` there with ``pillar_file=<path>`` (the module reads it and deletes
it at once), and deletes both copies in ``finally``, on failure or timeout too. Keys never
travel in argv, ``minion_opts``, environment variables or the roster.

Enable it with ``wrapper_dirs: [<certdeploy>/_wrapper]`` in the master config. salt-ssh has
no event bus: ``deploy``, ``trust_update`` and ``rollback`` fire their
``certdeploy/node/<id>/<outcome>`` event from the master.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import shlex
import sys
import tarfile
import tempfile

import salt.client.ssh
import salt.utils.event
import salt.utils.json
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)
__virtualname__ = "certdeploy"


def __virtual__():
    return __virtualname__


def _core(name):
    """``certdeploy_core.<name>`` from the master's ``utils_dirs``: salt-ssh's wrapper loader
    (unlike the runner's) does not make them importable."""
    if "certdeploy_core" not in sys.modules:
        master = __opts__.get("__master_opts__") or __opts__
        dirs = list(master.get("utils_dirs") or [])
        dirs.append(os.path.join(master.get("extension_modules") or "", "utils"))
        for directory in dirs:
            init = os.path.join(directory, "certdeploy_core", "__init__.py")
            if os.path.isfile(init):
                spec = importlib.util.spec_from_file_location(
                    "certdeploy_core", init, submodule_search_locations=[os.path.dirname(init)]
                )
                package = importlib.util.module_from_spec(spec)
                sys.modules["certdeploy_core"] = package
                spec.loader.exec_module(package)
                break
        else:
            raise CommandExecutionError(
                f"certdeploy wrapper: certdeploy_core not found in {dirs}. Fix: add "
                "<certdeploy>/_utils to the master's utils_dirs"
            )
    return importlib.import_module(f"certdeploy_core.{name}")


def _core_files():
    core_dir = os.path.dirname(_core("pillar_file").__file__)
    return core_dir, sorted(n for n in os.listdir(core_dir) if n.endswith(".py"))


def _ensure_core(single):
    """salt-ssh ships only the top-level files of ``_utils``: put the ``certdeploy_core``
    package where ``saltutil.sync_utils`` puts it on a minion (``extmods/utils``), and keep it
    equal to the master's by digest (one ``cat`` when it already is)."""
    core_dir, names = _core_files()
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(core_dir, name), "rb") as handle:
            digest.update(name.encode() + b"\0" + handle.read() + b"\0")
    digest = digest.hexdigest()
    utils = os.path.join(__opts__["thin_dir"], "running_data/var/cache/salt/minion/extmods/utils")
    dest = shlex.quote(os.path.join(utils, "certdeploy_core"))
    stdout, _, _ = single.shell.exec_cmd(f"cat {dest}/.digest 2>/dev/null || true")
    if stdout.strip().endswith(digest):
        return
    fd, archive = tempfile.mkstemp(prefix="certdeploy-core-", suffix=".tgz")
    os.close(fd)
    remote = os.path.join(__opts__["thin_dir"], os.path.basename(archive))
    try:
        with tarfile.open(archive, "w:gz") as tar:
            for name in names:
                tar.add(os.path.join(core_dir, name), arcname=name)
        _, stderr, retcode = single.shell.send(archive, remote)
    finally:
        os.unlink(archive)
    new = f"{dest}.new"
    _, stderr2, retcode2 = single.shell.exec_cmd(
        f"umask 077 && rm -rf {new} && mkdir -p {new} && tar -xzf {shlex.quote(remote)} -C {new}"
        f" && printf %s {digest} > {new}/.digest && rm -rf {dest} && mv {new} {dest};"
        f" rc=$?; rm -f {shlex.quote(remote)}; exit $rc"
    )
    if retcode or retcode2:
        raise CommandExecutionError(
            f"{_where()}: could not install certdeploy_core into {utils}: "
            f"{(stderr or stderr2).strip()[-300:]}. Fix: check the roster's thin_dir"
        )


def _single(argv):
    return salt.client.ssh.Single(
        __opts__,
        argv,
        mods=__salt__.mods,
        disable_wipe=True,
        fsclient=__context__["fileclient"],
        minion_opts=__salt__.minion_opts,
        **__salt__.kwargs,
    )


def _where():
    host = __salt__.kwargs.get("host", "?")
    return f"{__opts__['id']} ({host}:{__salt__.kwargs.get('port', 22)})"


def _argv(fun, args, kwargs, remote):
    argv = [f"certdeploy.{fun}", *(salt.utils.json.dumps(arg) for arg in args)]
    argv += [
        f"{key}={salt.utils.json.dumps(value)}"
        for key, value in kwargs.items()
        if not str(key).startswith("__")
    ]
    return [*argv, f"pillar_file={remote}"]


def _call(fun, args=(), kwargs=None):
    """Ship the pillar, run ``certdeploy.<fun>`` on the target, delete the pillar."""
    pillar_file = _core("pillar_file")
    plain = _core("target").plain
    pillar = {"certdeploy": plain(__pillar__.get("certdeploy") or {})}
    if not pillar["certdeploy"]:
        return _failed(
            f"{_where()}: the master compiles no certdeploy pillar for this salt-ssh id. "
            f"Fix: map {__opts__['id']} in the pillar top file (and the store, if used)"
        )
    master = __opts__.get("__master_opts__") or __opts__
    outbox = os.path.join(master["cachedir"], "certdeploy", "outbox")
    remote = pillar_file.remote_path(__opts__["thin_dir"])
    single = _single(_argv(fun, args, dict(kwargs or {}), remote))
    _ensure_core(single)
    try:
        local = pillar_file.write_local(outbox, pillar_file.payload(pillar))
        try:
            stdout, stderr, retcode = single.shell.send(local, remote)
        finally:
            pillar_file.remove(local)  # the master copy lives only as long as the copy
        if retcode:
            return _failed(
                f"{_where()}: could not copy the pillar file into {__opts__['thin_dir']}: "
                f"{(stderr or stdout).strip()[-300:]}. Fix: check the roster's thin_dir "
                "(its parent must exist and be writable by the roster user)"
            )
        stdout, stderr, retcode = single.cmd_block()
    finally:
        single.shell.exec_cmd(f"rm -f {shlex.quote(remote)}")
    return _result(fun, stdout, stderr, retcode)


def _result(fun, stdout, stderr, retcode):
    try:
        parsed = salt.utils.json.find_json(stdout)
    except ValueError:
        parsed = None
    local = parsed.get("local") if isinstance(parsed, dict) else None
    if not isinstance(local, dict) or "return" not in local:
        detail = (stderr or stdout or "no output").strip()[-400:]
        return _failed(f"{_where()}: certdeploy.{fun} gave no result: {detail}")
    retcode = max(int(retcode or 0), int(local.get("retcode") or 0))
    if retcode:
        __context__["retcode"] = retcode
    _fire(fun, local["return"])
    return local["return"]


def _failed(message):
    __context__["retcode"] = 1
    return f"ERROR: {message}"


def _fire(fun, ret):
    """The event a minion would have sent, fired on the master's bus (from ``salt-ssh`` and
    from the runner alike); a master that is not running loses it, with a warning."""
    if f"certdeploy.{fun}" not in _core("ssh_transport").NODE_EVENTS or not isinstance(ret, dict):
        return
    tag, data = _core("ssh_transport").node_event_for(__opts__["id"], f"certdeploy.{fun}", ret)
    master = __opts__.get("__master_opts__") or __opts__
    try:
        with salt.utils.event.get_master_event(master, master["sock_dir"], listen=False) as bus:
            bus.fire_event(data, tag)
    except Exception as exc:  # noqa: BLE001 - a lost event must not fail a deployment
        log.warning("certdeploy: could not fire %s: %s", tag, exc)


# ----------------------------------------------------------------------------- public


def describe(*args, **kwargs):
    """
    The target's public description (see the execution module), over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.describe
    """
    return _call("describe", args, kwargs)


def validate(*args, **kwargs):
    """
    Check the new bundle completely and change nothing, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.validate skip_cross_trust=True
    """
    return _call("validate", args, kwargs)


def plan(*args, **kwargs):
    """
    What ``deploy`` would change, changing nothing, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.plan
    """
    return _call("plan", args, kwargs)


def deploy(*args, **kwargs):
    """
    The safe path (validate, backup, install, configure, activate, verify, automatic
    rollback) over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.deploy method=reload skip_cross_trust=True
    """
    return _call("deploy", args, kwargs)


def rollback(*args, **kwargs):
    """
    Restore a backup, reactivate and verify the old certificate, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.rollback
    """
    return _call("rollback", args, kwargs)


def trust_update(*args, **kwargs):
    """
    Change only the truststore (CA rotation phases 1 and 3), over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.trust_update add='["-----BEGIN CERTIFICATE-----..."]'
    """
    return _call("trust_update", args, kwargs)


def facts(*args, **kwargs):
    """
    Several read-only facts (describe, peer_info, bundle_public, served, ring, keyspaces) in
    one round trip, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.facts
    """
    return _call("facts", args, kwargs)


def recover(*args, **kwargs):
    """
    Put a node whose deployment was interrupted back on one certificate, verified, over
    salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.recover
    """
    return _call("recover", args, kwargs)


def status(*args, **kwargs):
    """
    Served and on-disk fingerprints, backups and the last deployment, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.status
    """
    return _call("status", args, kwargs)


def verify(*args, **kwargs):
    """
    Prove from outside the process that the expected certificate is served, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.verify expected=<sha256>
    """
    return _call("verify", args, kwargs)


def peer_info(*args, **kwargs):
    """
    This node's installed chain and trusted CAs (public), over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.peer_info
    """
    return _call("peer_info", args, kwargs)


def bundle_public(*args, **kwargs):
    """
    The public half of the pending bundle, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.bundle_public
    """
    return _call("bundle_public", args, kwargs)


def ring(*args, **kwargs):
    """
    The ring as this node sees it, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.ring
    """
    return _call("ring", args, kwargs)


def keyspaces(*args, **kwargs):
    """
    Keyspaces and their replication, read over CQL from this node, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.keyspaces
    """
    return _call("keyspaces", args, kwargs)


def health_gate(*args, **kwargs):
    """
    The rollout's health gate, checked from this node, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.health_gate expect='{"127.0.0.1": "<sha256>"}'
    """
    return _call("health_gate", args, kwargs)


def health(*args, **kwargs):
    """
    Is the node serving what certdeploy last deployed, and for how long, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.health warn_days=30
    """
    return _call("health", args, kwargs)


def compliance(*args, **kwargs):
    """
    The live compliance check of this node, changing nothing, over salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.compliance min_days=30
    """
    return _call("compliance", args, kwargs)


def targets():
    """
    The certdeploy targets the master's pillar gives this salt-ssh id.

    CLI Example:

    .. code-block:: bash

        salt-ssh cass2-ssh certdeploy.targets
    """
    return _call("targets")
