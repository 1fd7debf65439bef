"""Real faults for the fault suite (issue 13): kill and restart the rig's Salt daemons, kill a
minion's job at an exact point of an install, fill a node's TLS directory.

Everything here acts on real processes and real filesystems:

- :func:`kill_minion` SIGKILLs a salt-minion's whole process group (the daemon and the job
  processes it forked), as the OOM killer or a power cut would;
- :class:`KillAtDirOpen` attaches ``strace`` to a minion's processes and delivers SIGKILL
  to the first one that opens a given directory. ``files.atomic_write`` opens the directory
  of a file it has just renamed into place (to fsync the rename), so with the node's TLS
  directory this kills the deployment right after its first file was replaced and before the
  next: an install caught half-way, every time;
- :func:`full_tmpfs` mounts a small tmpfs over a node's TLS directory (the node's files copied
  in, so it keeps serving) and fills it up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox import salt_rig
from sandbox.procs import group_members


def _update_salt(rig, **changes) -> None:
    descriptor = rig.descriptor()
    salt = descriptor["salt"]
    for key, value in changes.items():
        if key == "minion":
            mid, pid = value
            salt["minion_pids"][mid] = pid
        else:
            salt[key] = value
    rig._write_descriptor(descriptor)


def minion_pids(rig, mid: str) -> list[int]:
    return group_members(rig.descriptor()["salt"]["minion_pids"][mid])


def kill_minion(rig, mid: str, timeout: float = 10) -> None:
    pgid = rig.descriptor()["salt"]["minion_pids"][mid]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)
        time.sleep(0.1)


def start_minion(rig, mid: str) -> float:
    """Start the minion again and wait until it answers. Seconds taken."""
    _update_salt(rig, minion=(mid, salt_rig.start_minion(rig.root, mid)))
    return salt_rig.wait_for_minions(rig.root, [mid], timeout=120)


def restart_master(rig) -> float:
    """Stop the salt-master (SIGTERM to its process group), start it again, wait until every
    minion answers through it. Seconds taken."""
    started = time.monotonic()
    salt_rig.stop_groups([rig.descriptor()["salt"]["master_pid"]])
    _update_salt(rig, master_pid=salt_rig.start_master(rig.root))
    salt_rig.wait_for_minions(rig.root, rig.minion_ids(), timeout=180)
    return time.monotonic() - started


class KillAtDirOpen:
    """``strace -f`` on every process of ``pids``, injecting SIGKILL into the first
    ``openat`` of ``directory`` (and only that one). ``killed()`` tells whether it fired."""

    def __init__(self, pids: list[int], directory: Path, log: Path):
        self.log = log
        argv = ["strace", "-f", "-q", "-o", str(log), "-P", str(directory)]
        argv += ["-e", "trace=openat", "-e", "inject=openat:signal=KILL:when=1"]
        for pid in pids:
            argv += ["-p", str(pid)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # attached to every thread before the caller goes on
        if self.proc.poll() is not None:
            raise RuntimeError(f"strace exited: {self.proc.stderr.read().decode()[-500:]}")

    def killed(self) -> bool:
        return self.log.exists() and "killed by SIGKILL" in self.log.read_text()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.killed():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def fill(directory: Path, name: str = ".filler") -> None:
    """Write zeros into ``directory/name`` until its filesystem says ENOSPC."""
    fd = os.open(Path(directory) / name, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def full_tmpfs(directory: Path, size: str = "256k"):
    """Mount a ``size`` tmpfs over ``directory`` holding copies of its files (same modes and
    owners), fill it, yield; then unmount (the original files reappear, untouched)."""
    keep = Path(tempfile.mkdtemp(prefix="certdeploy-fault-"))
    try:
        for entry in directory.iterdir():
            if entry.is_file():
                shutil.copy2(entry, keep / entry.name)
                st = entry.stat()
                os.chown(keep / entry.name, st.st_uid, st.st_gid)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)],
            check=True,
        )
        try:
            for entry in keep.iterdir():
                shutil.copy2(entry, directory / entry.name)
                st = entry.stat()
                os.chown(directory / entry.name, st.st_uid, st.st_gid)
            fill(directory)
            yield directory
        finally:
            subprocess.run(["umount", "-l", str(directory)], check=False)
    finally:
        shutil.rmtree(keep, ignore_errors=True)
