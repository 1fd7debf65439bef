"""Which TCP connections a process holds, read from ``/proc``: the ``(address, port)`` of each
of its sockets' local ends, which is what a node's ``system_views.clients`` shows as the
client's ``address`` and ``port``. Matching the two scopes a client target's verification to
its own process, so another instance of the same app (same roles, same host or not) is never
mistaken for it. Linux only; the caller must be allowed to read ``/proc/<pid>/fd`` (root, or
the app's user)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path


def _inodes(pid: int, proc: Path) -> set[str]:
    inodes = set()
    fd_dir = proc / str(pid) / "fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(fd_dir / fd)
        except OSError:  # closed between listdir and readlink
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    # /proc/net/tcp{,6} prints each 32-bit word in host (little-endian) order
    data = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(data)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def endpoints(pids, proc: Path | str = "/proc") -> set[tuple[str, int]]:
    """``{(local address, local port), ...}`` of the TCP sockets the processes ``pids`` hold.
    Raises ``OSError`` when a process does not exist or cannot be read."""
    proc = Path(proc)
    wanted: set[str] = set()
    for pid in pids:
        wanted |= _inodes(int(pid), proc)
    found = set()
    for pid in {int(p) for p in pids}:
        for table in ("tcp", "tcp6"):
            path = proc / str(pid) / "net" / table  # the process's own network namespace
            try:
                lines = path.read_text().splitlines()[1:]
            except FileNotFoundError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[9] in wanted:
                    addr, port = fields[1].split(":")
                    found.add((_address(addr), int(port, 16)))
    return found
