"""Small host helpers the rig and its parts share: private files, the current user and group,
and whether a port answers."""

from __future__ import annotations

import os
from pathlib import Path


def port_busy(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def group() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name
