"""RSS and open file descriptors of process groups, from /proc (the soak's leak figures)."""

from __future__ import annotations

import os


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[2]) == pgid:  # field 5 of stat: the process group id
            members.append(int(entry))
    return members


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def measure(groups: dict[str, int]) -> dict:
    """``{"groups": {name: {"processes", "rss_mib", "fds"}}}`` for process groups led by the
    given pids (a salt daemon and its workers)."""
    out = {}
    for name, pgid in groups.items():
        pids = group_members(pgid)
        out[name] = {
            "processes": len(pids),
            "rss_mib": round(sum(_rss_kib(p) for p in pids) / 1024, 1),
            "fds": sum(_fds(p) for p in pids),
        }
    return {"groups": out}
