"""The rig's agentless side: a real OpenSSH sshd on the nodes' loopback addresses at a high
port, keys generated at ``up``, and the salt-ssh roster that names each node served that way.

Everything lives under ``<rig>/ssh``: host key, the master's client key, ``authorized_keys``,
``known_hosts`` (the master's ``known_hosts_file``), ``sshd_config``, the log and one thin dir
per roster id. ``down`` stops the sshd by its PID and closes the ssh ControlMaster sockets.
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

from sandbox import salt_rig

SSHD = "/usr/sbin/sshd"
FIRST_PORT = 22022


class SshdError(RuntimeError):
    pass


def ssh_dir(rig: Path) -> Path:
    return rig / "ssh"


def _keygen(path: Path, comment: str) -> str:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
        )
    return path.with_suffix(".pub").read_text().strip()


def _free_port(addresses: list[str]) -> int:
    for port in range(FIRST_PORT, FIRST_PORT + 200):
        try:
            for address in addresses:
                with socket.socket() as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return port
    raise SshdError(f"no free port in {FIRST_PORT}..{FIRST_PORT + 199} on {addresses}")


def setup(rig: Path, hosts: dict[str, str]) -> dict:
    """Keys, ``sshd_config``, ``known_hosts`` and the roster for ``hosts`` (roster id ->
    address). Returns the facts the descriptor keeps."""
    if not os.access(SSHD, os.X_OK):
        raise SshdError(f"{SSHD} is missing: run 'make bootstrap' (installs openssh-server)")
    base = ssh_dir(rig)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    (base / "thin").mkdir(mode=0o700, exist_ok=True)
    host_key = base / "ssh_host_ed25519_key"
    host_pub = _keygen(host_key, "certdeploy-sandbox-host")
    client_key = base / "id_ed25519"
    client_pub = _keygen(client_key, "certdeploy-sandbox-master")
    (base / "authorized_keys").write_text(client_pub + "\n")
    addresses = sorted(set(hosts.values()))
    port = _free_port(addresses)
    listen = "".join(f"ListenAddress {address}:{port}\n" for address in addresses)
    (base / "sshd_config").write_text(
        f"{listen}"
        f"HostKey {host_key}\n"
        f"PidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "PermitUserEnvironment no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "MaxStartups 50:30:100\n"
        "MaxSessions 50\n"
        "LogLevel INFO\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    (base / "known_hosts").write_text(
        "".join(f"[{address}]:{port} {host_pub}\n" for address in addresses)
    )
    roster = {
        roster_id: roster_entry(rig, roster_id, address, port)
        for roster_id, address in sorted(hosts.items())
    }
    roster_path(rig).write_text(yaml.safe_dump(roster, sort_keys=False))
    return {"port": port, "addresses": addresses, "ids": sorted(hosts)}


def roster_path(rig: Path) -> Path:
    # Named by roster_file only: a master config without it must not find it beside itself.
    return ssh_dir(rig) / "roster"


def roster_entry(rig: Path, roster_id: str, address: str, port: int) -> dict:
    base = ssh_dir(rig)
    return {
        "host": address,
        "port": port,
        "user": getpass.getuser(),
        "priv": str(base / "id_ed25519"),
        "identities_only": True,
        # The shim's `command -v python3` finds the venv's (cryptography, the driver) first.
        "set_path": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        # One thin dir per id: several ids may share a host.
        "thin_dir": str(base / "thin" / roster_id),
        "ssh_options": [
            "ControlMaster=auto",
            f"ControlPath={base}/cm-%C",
            "ControlPersist=120",
            "ServerAliveInterval=10",
            "ServerAliveCountMax=3",
        ],
    }


def master_settings(rig: Path) -> dict:
    """What the master config needs to reach the roster's targets."""
    base = ssh_dir(rig)
    return {
        "roster_file": str(roster_path(rig)),
        "known_hosts_file": str(base / "known_hosts"),
        "ssh_log_file": str(rig / "salt" / "logs" / "ssh.log"),
        "ssh_max_procs": 25,
    }


def start(rig: Path) -> int:
    base = ssh_dir(rig)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    log = open(base / "sshd.log", "ab")  # noqa: SIM115 - handed to the daemon
    with log:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(base / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (base / "sshd.log").read_text()[-400:]
            raise SshdError(f"sshd exited with {proc.returncode}: {tail}")
        if (base / "sshd.pid").exists():
            return proc.pid
        time.sleep(0.1)
    raise SshdError(f"sshd did not write {base / 'sshd.pid'} within 10s")


def close_masters(rig: Path) -> None:
    """End the ssh ControlMaster connections (``ControlPersist`` keeps them alive)."""
    for control in ssh_dir(rig).glob("cm-*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={control}", "-O", "exit", "sandbox"],
            capture_output=True,
            check=False,
            timeout=10,
        )


def stop(rig: Path, pid: int | None) -> None:
    close_masters(rig)
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def first_call(rig: Path, config_dir: Path, ids: list[str], timeout: float = 120) -> float:
    """``salt-ssh test.ping`` to every roster id (the first call deploys the thin). Returns
    the seconds taken; raises naming the ids that did not answer."""
    started = time.monotonic()
    res = salt_rig.salt_cmd(
        rig,
        "-L",
        ",".join(ids),
        "test.ping",
        "--out=json",
        "--static",
        cli="salt-ssh",
        etc=config_dir,
        timeout=timeout,
    )
    try:
        answered = json.loads(res.stdout or "{}")
    except json.JSONDecodeError:
        answered = {}

    def ok(answer):
        return answer is True or isinstance(answer, dict) and answer.get("return") is True

    missing = [i for i in ids if not ok(answered.get(i))]
    if missing:
        raise SshdError(
            f"salt-ssh {missing} did not answer test.ping: {(res.stderr or res.stdout)[-500:]}"
            f"; see {ssh_dir(rig) / 'sshd.log'}"
        )
    return time.monotonic() - started
