"""Rollout job state: an immutable record, written atomically after every transition, and a
per-cluster lock that knows when its holder died.

Following cstar: ``with_node`` / ``with_status`` return *new* jobs (deep copies, never shared
structure), and the next batch is a pure function of the job. Unlike cstar, the job file is
replaced atomically and holds no key material (only fingerprints, ids, timings, evidence).
"""

from __future__ import annotations

import copy
import enum
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import files, timeutil

# The job file's schema. Bump it when a field changes meaning; resume refuses other versions.
FORMAT_VERSION = 1


class NodeState(str, enum.Enum):
    """A node's state in a job (stored as its value, so job files stay plain JSON)."""

    PENDING = "pending"
    RUNNING = "running"
    DEPLOYED = "deployed"
    SKIPPED = "skipped"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"


class JobStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HALTED = "halted"
    ROLLED_BACK = "rolled_back"
    REFUSED = "refused"


DONE_STATES = (NodeState.DEPLOYED.value, NodeState.SKIPPED.value)
FINAL_STATUSES = tuple(s.value for s in JobStatus if s is not JobStatus.RUNNING)


@dataclass(frozen=True)
class Job:
    data: dict

    @property
    def job_id(self) -> str:
        return self.data["job_id"]

    @property
    def nodes(self) -> dict:
        return self.data["nodes"]

    def get(self, key, default=None):
        return self.data.get(key, default)

    def with_status(self, status: str, **extra) -> Job:
        data = copy.deepcopy(self.data)
        data.update(status=status, updated=time.time(), **copy.deepcopy(extra))
        return Job(data)

    def with_node(self, node_id: str, **changes) -> Job:
        data = copy.deepcopy(self.data)
        data["nodes"][node_id].update(copy.deepcopy(changes))
        data["updated"] = time.time()
        return Job(data)

    def with_step(self, node_id: str, step: str, start: float, end: float, **info) -> Job:
        data = copy.deepcopy(self.data)
        data["nodes"][node_id].setdefault("steps", []).append(
            {"step": step, "start": start, "end": end, **copy.deepcopy(info)}
        )
        data["updated"] = time.time()
        return Job(data)

    def done(self) -> set[str]:
        return {n for n, v in self.nodes.items() if v.get("state") in DONE_STATES}


def new_job_id(now: float | None = None) -> str:
    return f"{timeutil.stamp(now)}-{secrets.token_hex(3)}"


def new_job(kind: str, cluster: str, params: dict, plan: dict, nodes: dict) -> Job:
    now = time.time()
    return Job(
        {
            "format_version": FORMAT_VERSION,
            "job_id": new_job_id(now),
            "kind": kind,
            "cluster": cluster,
            "created": now,
            "updated": now,
            "status": "running",
            "params": copy.deepcopy(params),
            "plan": copy.deepcopy(plan),
            "nodes": {
                node_id: {"state": "pending", "steps": [], **copy.deepcopy(info)}
                for node_id, info in nodes.items()
            },
        }
    )


# ----------------------------------------------------------------------------- storage


def job_dir(cachedir: str) -> str:
    return os.path.join(cachedir, "certdeploy", "jobs")


def save(cachedir: str, job: Job) -> str:
    directory = job_dir(cachedir)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"{job.job_id}.json")
    files.atomic_write(path, json.dumps(job.data, indent=2, sort_keys=True).encode(), mode=0o600)
    return path


def load(cachedir: str, job_id: str, *, strict: bool = True) -> Job:
    """The job record. ``strict`` (resume, rollback) refuses another format version; reading
    it to show it is always allowed."""
    files.safe_name(job_id, "job_id", "master")
    path = os.path.join(job_dir(cachedir), f"{job_id}.json")
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        known = [j["job_id"] for j in list_jobs(cachedir)[:10]]
        raise SaltInvocationError(
            f"master: job_id {job_id!r} not found in {job_dir(cachedir)}. "
            f"Fix: use one of {known} (salt-run certdeploy.jobs)"
        ) from None
    except ValueError as exc:
        raise CommandExecutionError(f"master: job file {path} is not JSON: {exc}") from None
    if strict:
        check_format(data, path)
    return Job(data)


def check_format(data: dict, path: str) -> None:
    """Refuse a job file written by another version of certdeploy: resuming it would read
    fields whose meaning changed. Files from before versioning count as version 1."""
    version = data.get("format_version", 1)
    if version != FORMAT_VERSION:
        raise CommandExecutionError(
            f"master: job file {path} has format_version {version!r}; this certdeploy reads "
            f"format {FORMAT_VERSION}. Fix: resume or roll it back with the certdeploy version "
            "that wrote it, or start a new rollout"
        )


def list_jobs(cachedir: str) -> list[dict]:
    directory = job_dir(cachedir)
    jobs = []
    for name in sorted(os.listdir(directory), reverse=True) if os.path.isdir(directory) else ():
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name)) as fh:
                    jobs.append(json.load(fh))
            except (OSError, ValueError):
                continue
    return jobs


# ----------------------------------------------------------------------------- lock


def _lock_path(cachedir: str, cluster: str) -> str:
    files.safe_name(cluster, "cluster", "master")
    return os.path.join(cachedir, "certdeploy", "locks", f"{cluster}.lock")


def pid_alive(pid: int) -> bool:
    """Is a process with this pid running (or a zombie) on this host?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(cachedir: str, cluster: str) -> dict | None:
    try:
        with open(_lock_path(cachedir, cluster)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def is_stale(holder: dict) -> bool:
    """A lock is stale when its owner ran on this host and that process is gone."""
    return holder.get("host") == socket.gethostname() and not pid_alive(int(holder["pid"]))


def acquire(cachedir: str, cluster: str, job_id: str, *, force=False) -> dict:
    """Take the cluster lock for ``job_id``. Refuses while another live rollout holds it;
    takes over a stale lock (dead owner) or, with ``force``, any lock — and says so."""
    path = _lock_path(cachedir, cluster)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    mine = {"job_id": job_id, "pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}
    holder = lock_holder(cachedir, cluster)
    takeover = None
    if holder and holder.get("job_id") != job_id:
        if is_stale(holder):
            takeover = "stale"
        elif force:
            takeover = "forced"
        else:
            raise CommandExecutionError(
                f"master: cluster {cluster!r} is locked by rollout {holder['job_id']} "
                f"(pid {holder['pid']} on {holder['host']}). Fix: wait for it, "
                f"`salt-run certdeploy.resume {holder['job_id']}`, or pass force=True if that "
                "process is gone"
            )
    payload = json.dumps(mine).encode()
    if holder is None:
        # Exclusive create: of two rollouts racing for a free lock, exactly one wins.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return acquire(cachedir, cluster, job_id, force=force)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
    else:
        files.atomic_write(path, payload, mode=0o600)
    return {**mine, "took_over": takeover, "previous": holder if takeover else None}


def release(cachedir: str, cluster: str, job_id: str) -> None:
    holder = lock_holder(cachedir, cluster)
    if holder and holder.get("job_id") == job_id:
        os.unlink(_lock_path(cachedir, cluster))
