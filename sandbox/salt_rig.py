"""The sandbox's Salt side: one salt-master and one salt-minion per Cassandra node.

Configs go under ``<rig>/salt``; every path is kept short because Salt's IPC sockets hit the
AF_UNIX path limit (~107 bytes). The master's ``file_roots`` is this repository, so
``saltutil.sync_all`` brings ``_modules``, ``_states``, ``_runners``, ``_utils`` and ``_beacons``
exactly as in production.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class SaltRigError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def master_config(rig: Path, publish_port: int, ret_port: int) -> dict:
    root = rig / "salt"
    return {
        "id": "sandbox-master",
        "user": getpass.getuser(),
        "root_dir": str(root),
        "pki_dir": str(root / "pki" / "master"),
        "cachedir": str(root / "cache" / "master"),
        "sock_dir": str(root / "s" / "m"),
        "pidfile": str(root / "run" / "master.pid"),
        "log_file": str(root / "logs" / "master.log"),
        "log_level_logfile": "info",
        "interface": "127.0.0.1",
        "publish_port": publish_port,
        "ret_port": ret_port,
        "auto_accept": True,
        "worker_threads": 4,
        "file_roots": {"base": [str(REPO)]},
        "pillar_roots": {"base": [str(rig / "pillar")]},
        "runner_dirs": [str(REPO / "_runners")],
        # salt-ssh targets: the master-side wrapper ships each call's pillar privately.
        "wrapper_dirs": [str(REPO / "_wrapper")],
        "utils_dirs": [str(REPO / "_utils")],
        "pillar_dirs": [str(REPO / "_pillar")],
        # Each minion gets only its own bundle (private key included) from the store.
        "ext_pillar": [{"certdeploy_store": {"root": str(rig / "store")}}],
        # The compiled pillar holds private keys: never cache it on the master.
        "minion_data_cache": False,
        "pillar_cache": False,
        "reactor": [
            {"certdeploy/cert/renewed": [str(REPO / "reactor" / "renewed.sls")]},
            {"certdeploy/health/failed": [str(REPO / "reactor" / "health_failed.sls")]},
        ],
        # The master's scheduler starts queued rollouts when they are ready.
        "schedule": {
            "certdeploy-queue": {
                "function": "certdeploy.process_queue",
                "seconds": 3,
                "maxrunning": 1,
                "return_job": False,
            }
        },
        "certdeploy": {
            "store_root": str(rig / "store"),
            "coalesce_seconds": 6,
            "auto_rollback_seconds": 3600,
        },
        "keep_jobs_seconds": 86400,
        "timeout": 30,
    }


def minion_config(rig: Path, minion_id: str, ret_port: int) -> dict:
    root = rig / "salt" / minion_id
    return {
        "id": minion_id,
        "user": getpass.getuser(),
        "master": "127.0.0.1",
        "master_port": ret_port,
        "root_dir": str(root),
        "pki_dir": str(root / "pki"),
        "cachedir": str(root / "cache"),
        "sock_dir": str(root / "s"),
        "pidfile": str(root / "minion.pid"),
        "log_file": str(root / "minion.log"),
        "log_level_logfile": "info",
        "acceptance_wait_time": 1,
        "random_reauth_delay": 0,
        "auth_safemode": False,
        "multiprocessing": True,
        "beacons": {},
    }


def write_configs(
    rig: Path, minion_ids, pillars: dict, ssh: dict | None = None, ssh_dir: Path | None = None
) -> dict:
    """Write master, minion and pillar files. Returns the port map. ``ssh`` holds the master
    settings for salt-ssh targets (roster, known_hosts); with ``ssh_dir`` they go into a
    second master config there (same master, cachedir and bus) instead of the main one."""
    publish_port, ret_port = free_port(), free_port()
    etc = rig / "salt" / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (rig / "salt" / "logs").mkdir(parents=True, exist_ok=True)
    config = master_config(rig, publish_port, ret_port)
    if ssh and ssh_dir:
        ssh_dir.mkdir(parents=True, exist_ok=True)
        (ssh_dir / "master").write_text(yaml.safe_dump({**config, **ssh}))
    elif ssh:
        config.update(ssh)
    (etc / "master").write_text(yaml.safe_dump(config))
    for minion_id in minion_ids:
        conf_dir = rig / "salt" / minion_id
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "minion").write_text(yaml.safe_dump(minion_config(rig, minion_id, ret_port)))
    write_pillar(rig, pillars)
    return {"publish_port": publish_port, "ret_port": ret_port}


def write_pillar(rig: Path, pillars: dict) -> None:
    """``pillars`` maps minion id -> its pillar dict. Each minion sees only its own file."""
    pillar_dir = rig / "pillar" / "certdeploy_nodes"
    pillar_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(rig / "pillar", 0o700)
    top = {"base": {mid: [f"certdeploy_nodes.{mid}"] for mid in pillars}}
    (rig / "pillar" / "top.sls").write_text(yaml.safe_dump(top))
    for mid, data in pillars.items():
        write_pillar_file(rig, mid, data)


def write_pillar_file(rig: Path, minion_id: str, data: dict) -> None:
    path = rig / "pillar" / "certdeploy_nodes" / f"{minion_id}.sls"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def _daemon_env() -> dict:
    """The environment of the rig's Salt daemons: this one, but caching bytecode as a Salt
    host does. This box sets ``PYTHONDONTWRITEBYTECODE=1`` for every process; inherited, it
    made every minion job compile certdeploy's modules from source (~0.1 s of CPU a job, which
    a 100-minion bench multiplies on 2 cores)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _spawn(argv: list[str], log: Path) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env=_daemon_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `down` stops it and all its workers
        )
    return proc.pid


def start_master(rig: Path) -> int:
    etc = rig / "salt" / "etc"
    log = rig / "salt" / "logs" / "master.stdout"
    return _spawn([str(BIN / "salt-master"), "-c", str(etc), "-l", "warning"], log)


def start_minion(rig: Path, minion_id: str) -> int:
    conf_dir = rig / "salt" / minion_id
    log = rig / "salt" / "logs" / f"{minion_id}.stdout"
    return _spawn([str(BIN / "salt-minion"), "-c", str(conf_dir), "-l", "warning"], log)


def salt_cmd(
    rig: Path, *args: str, timeout: float = 120, cli: str = "salt", etc: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the ``salt`` CLI (or ``salt-ssh``, ``salt-run``) against the sandbox master (what a
    person types by hand)."""
    etc = etc or rig / "salt" / "etc"
    return subprocess.run(
        [str(BIN / cli), "-c", str(etc), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_minions(rig: Path, minion_ids, timeout: float = 90) -> float:
    """Wait until every minion answers ``test.ping``. Returns the seconds taken."""
    started = time.monotonic()
    deadline = started + timeout
    answered: dict = {}
    while time.monotonic() < deadline:
        res = salt_cmd(
            rig,
            "-L",
            ",".join(minion_ids),
            "test.ping",
            "--out=json",
            "--static",
            "-t",
            "5",
            timeout=30,
        )
        try:
            answered = json.loads(res.stdout or "{}")
        except json.JSONDecodeError:
            answered = {}
        if all(answered.get(mid) is True for mid in minion_ids):
            return time.monotonic() - started
        time.sleep(1)
    missing = [mid for mid in minion_ids if answered.get(mid) is not True]
    tails = "".join(
        f"\n--- {log} (last lines)\n{_tail(log)}"
        for mid in missing
        for log in (rig / "salt" / mid / "minion.log", rig / "salt" / "logs" / f"{mid}.stdout")
    )
    raise SaltRigError(
        f"minions {missing} did not answer test.ping within {timeout:.0f}s; "
        f"see {rig / 'salt' / 'logs'}{tails}"
    )


def _tail(log: Path, lines: int = 15) -> str:
    """The end of a daemon's log, for an error that has to say why a daemon went quiet."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"


def sync_extension(rig: Path, minion_ids) -> None:
    """``saltutil.sync_all`` on every minion, so ``certdeploy.*`` answers on the first call
    (the master's file_roots is this repository)."""
    res = salt_cmd(
        rig, "-L", ",".join(minion_ids), "saltutil.sync_all", "--out=json", "--static", timeout=180
    )
    try:
        synced = json.loads(res.stdout or "{}")
    except json.JSONDecodeError:
        synced = {}
    missing = [mid for mid in minion_ids if not isinstance(synced.get(mid), dict)]
    if res.returncode != 0 or missing:
        detail = (res.stderr or res.stdout)[-500:]
        raise SaltRigError(f"saltutil.sync_all failed on {missing or minion_ids}: {detail}")


def stop_groups(pids, timeout: float = 30) -> None:
    """SIGTERM the process groups led by ``pids`` (daemons and their workers) all at once,
    wait for them together, then SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_group_alive(pid) for pid in pids):
            return
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap the leader if it is our own child
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[0] is the state, fields[2] the process group id.
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False
