"""The ``container`` profile's target: a Cassandra node or a client application that runs in a
container, its certificate files in a host directory bind-mounted into it.

Pillar (``certdeploy:targets:<name>``, documented in ``pillar/certdeploy_container_example.sls``)::

    profile: container
    runs: client                     # cassandra | client: the profile the container runs
    engine: [podman]                 # argv prefix: [podman], [docker], [podman, --remote, ...]
    container: cdapp
    host_dir: /srv/cdapp/tls         # the bind-mounted DIRECTORY (never single files)
    container_dir: /etc/cdapp/tls    # where the container sees it
    keystore: client.pem             # file names, relative to both directories
    truststore: ca.pem
    uid: 999                         # the owner inside the image: files are written with it
    gid: 999
    mode: '0600'
    activate:
      method: signal                 # exec | signal | restart
      exec: [nodetool, reloadssl]    # run inside the container (cassandra's default)
      signal: HUP                    # <engine> kill --signal HUP <container>
      restart_grace: 30              # <engine> restart -t 30 <container>
    # runs: cassandra also takes config_file (the host path of the bind-mounted yaml), the
    # node's listen_address / client_port / internode_port as published to the host, and
    # nodetool (the argv inside the container, default [nodetool]); runs: client takes the
    # client profile's identity, role, contact_points, health, verify_client.

The inner target (:mod:`.cassandra_target` or :mod:`.client_target`) is built with the host
paths, numeric owner and group and the engine's control argv; the container target answers
every other attribute from it, so backup, install, verify and rollback see a plain target.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from . import cassandra, client
from .client_target import argv

RUNS = {"cassandra": cassandra, "client": client}
ACTIVATIONS = ("exec", "signal", "restart")
SIGNALS = ("HUP", "USR1", "USR2", "TERM", "INT")


@dataclass(frozen=True)
class ContainerTarget:
    name: str
    profile: str
    node: str
    runs: str
    engine: tuple[str, ...]
    container: str
    host_dir: str
    container_dir: str
    files: dict  # label -> file name relative to both dirs ("keystore", "truststore")
    uid: int
    gid: int
    method: str  # the default activation: exec | signal | restart
    exec: tuple[str, ...]
    signal: str
    restart_grace: int
    inner: object  # the cassandra or client target, with host paths

    def __getattr__(self, key):
        if key == "inner":  # not set yet (copy, unpickle): no recursion
            raise AttributeError(key)
        return getattr(self.inner, key)

    def in_container(self, label: str) -> str:
        return posixpath.join(self.container_dir, self.files[label])

    def on_host(self, label: str) -> str:
        return posixpath.join(self.host_dir, self.files[label])

    def engine_argv(self, *args) -> list[str]:
        return [*self.engine, *map(str, args)]

    def public(self) -> dict:
        inner = self.inner.public()
        return {
            **inner,
            "profile": self.profile,
            "runs": self.runs,
            "engine": list(self.engine),
            "container": self.container,
            "host_dir": self.host_dir,
            "container_dir": self.container_dir,
            "files": dict(self.files),
            "uid": self.uid,
            "gid": self.gid,
            "activate": {
                "method": self.method,
                "exec": list(self.exec),
                "signal": self.signal,
                "restart_grace": self.restart_grace,
            },
        }


def _int_id(value, key, bad) -> int:
    if isinstance(value, bool) or not str(value).isdigit():
        raise bad(key, f"{value!r} is not a numeric id", "give the id inside the image, e.g. 999")
    return int(value)


def _relative(value, key, bad) -> str:
    name = str(value or "")
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise bad(
            key,
            f"{value!r} is not a file name relative to host_dir and container_dir",
            "give e.g. keystore.p12; the directories are host_dir and container_dir",
        )
    return name


def _absolute(value, key, bad) -> str:
    path = str(value or "")
    if not path.startswith("/"):
        raise bad(key, f"{value!r} is not an absolute path", "give the absolute directory")
    return posixpath.normpath(path)


def load(name: str, profile: str, data: dict, node: str, bad) -> ContainerTarget:
    runs = data.get("runs")
    if runs not in RUNS:
        raise bad("runs", f"{runs!r} is not a containerised profile", f"use one of {list(RUNS)}")
    engine = argv(data.get("engine"), "engine", bad)
    if not engine:
        raise bad("engine", "missing", "give the engine's argv prefix, e.g. [podman]")
    if not data.get("container"):
        raise bad("container", "missing", "give the container's name or id")
    host_dir = _absolute(data.get("host_dir"), "host_dir", bad)
    container_dir = _absolute(data.get("container_dir"), "container_dir", bad)
    files = {k: _relative(data.get(k), k, bad) for k in ("keystore", "truststore")}
    uid, gid = (_int_id(data.get(k), k, bad) for k in ("uid", "gid"))
    activate = data.get("activate") or {}
    method = activate.get("method") or ("exec" if runs == "cassandra" else "signal")
    if method not in ACTIVATIONS:
        raise bad("activate:method", f"{method!r} is unknown", f"use one of {ACTIVATIONS}")
    if runs == "cassandra" and method == "signal":
        raise bad("activate:method", "Cassandra does not reload on a signal", "use exec")
    default_exec = [*data.get("nodetool", ["nodetool"]), "reloadssl"] if runs == "cassandra" else []
    exec_argv = argv(activate.get("exec", default_exec), "activate:exec", bad)
    if method == "exec" and not exec_argv:
        raise bad("activate:exec", "missing for method exec", "give the argv run in the container")
    sig = str(activate.get("signal", "HUP")).upper().removeprefix("SIG")
    if sig not in SIGNALS:
        raise bad("activate:signal", f"{sig!r} is not offered", f"use one of {SIGNALS}")
    grace = activate.get("restart_grace", 30)
    if not str(grace).isdigit():
        raise bad("activate:restart_grace", f"{grace!r} is not whole seconds", "use e.g. 30")
    container = str(data["container"])
    inner_data = {
        **RUNS[runs].DEFAULTS,
        **{k: v for k, v in data.items() if k not in _OWN},
        "keystore": posixpath.join(host_dir, files["keystore"]),
        "truststore": posixpath.join(host_dir, files["truststore"]),
        "owner": str(uid),
        "group": str(gid),
    }
    for key in RUNS[runs].REQUIRED:
        if not inner_data.get(key):
            raise bad(key, f"missing (runs: {runs} needs it)", "set it in this minion's pillar")
    exec_in = [*engine, "exec", container]
    if runs == "cassandra":
        inner_data["control"] = {
            "nodetool": [*exec_in, *data.get("nodetool", ["nodetool"])],
            "stop": [*engine, "stop", "-t", str(grace), container],
            "start": [*engine, "start", container],
        }
        inner_data["store_paths_in_yaml"] = (
            posixpath.join(container_dir, files["keystore"]),
            posixpath.join(container_dir, files["truststore"]),
        )
    else:
        inner_data["activate"] = {
            "method": "reload",
            "reload": [*engine, "kill", "--signal", sig, container],
            "restart": [*engine, "restart", "-t", str(grace), container],
            "cwd": activate.get("cwd"),  # where health and pid_command run, on the host
        }
    inner = RUNS[runs].load(name, runs, inner_data, node, bad)
    return ContainerTarget(
        name=name,
        profile=profile,
        node=node,
        runs=runs,
        engine=engine,
        container=container,
        host_dir=host_dir,
        container_dir=container_dir,
        files=files,
        uid=uid,
        gid=gid,
        method=method,
        exec=exec_argv,
        signal=sig,
        restart_grace=int(grace),
        inner=inner,
    )


# container keys the inner profile does not take
_OWN = {"profile", "runs", "engine", "container", "host_dir", "container_dir", "uid", "gid"}
_OWN |= {"activate", "nodetool"}
