"""Real containers for the rig, on podman with runc (no registry, no Docker engine).

- The base image is a Debian minbase rootfs (``debootstrap`` from the mirror apt already uses,
  with ``python3`` and ``openssl``) and two image users: ``app`` (uid 999) and ``cassandra``
  (uid 998). Its tarball is cached under ``.cache/containers``; each rig imports it into its
  own storage (``<dir>/containers``) with ``podman import``.
- Podman runs with the settings this machine needs, all as flags of the engine argv (so a
  ``container`` target's ``engine:`` pillar is that same argv and nothing system-wide is
  written): runtime ``runc``, ``cgroupfs``, a file events log, and on ``run`` ulimits the
  kernel allows here (``nofile``/``nproc`` at podman's defaults are refused).
- :func:`start_app` runs the sample Python client app (``sandbox.client_app``) in a container:
  host network, ``--init`` (catatonit forwards the HUP), the repo and the venv's packages
  mounted read-only, its TLS files in a bind-mounted *directory* owned by the image's uid.
- :mod:`sandbox.container_node` runs one Cassandra node in a container the same way (the
  JVM and the jars bind-mounted read-only; a single-node cluster of its own on 127.0.0.4).

Every container carries the label ``certdeploy-sandbox=<dir>``; :func:`remove_all` (``down``)
removes them and the storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "containers"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "openssl")
USERS = {"app": 999, "cassandra": 998}
ULIMITS = ("nofile=20000:20000", "nproc=32768:32768")  # podman's defaults are refused here
IMAGE = "localhost/certdeploy-base"


class ContainerError(RuntimeError):
    pass


def storage(root: Path) -> Path:
    return Path(root) / "containers"


def engine(root: Path) -> list[str]:
    """The podman argv prefix for this rig's storage and this machine's settings."""
    base = storage(root)
    return [
        shutil.which("podman") or "podman",
        "--root",
        str(base / "storage"),
        "--runroot",
        str(base / "run"),
        "--tmpdir",
        str(base / "tmp"),
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]


def _run(argv, timeout=300, check=True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise ContainerError(f"{' '.join(map(str, argv[:12]))} ...: {res.stderr.strip()[-600:]}")
    return res


def available() -> str | None:
    """Why containers cannot run here, or None."""
    for tool in ("podman", "runc", "debootstrap"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make bootstrap installs it)"
    if not Path("/usr/libexec/podman/catatonit").exists():
        return "catatonit is not installed (podman --init needs it; make bootstrap installs it)"
    return None


def _recipe() -> str:
    return json.dumps({"suite": SUITE, "packages": PACKAGES, "users": USERS}, sort_keys=True)


def base_tarball(log=print) -> Path:
    """The cached rootfs tarball, built once (about a minute) by debootstrap."""
    tag = hashlib.sha256(_recipe().encode()).hexdigest()[:12]
    tarball = CACHE / f"base-{SUITE}-{tag}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
        _run([*argv, SUITE, str(rootfs), MIRROR], timeout=900)
        for name, uid in USERS.items():
            with open(rootfs / "etc/passwd", "a") as fh:
                fh.write(f"{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n")
            with open(rootfs / "etc/group", "a") as fh:
                fh.write(f"{name}:x:{uid}:\n")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        partial = Path(tmp) / "base.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=300)
        os.replace(partial, tarball)
    log(f"container base image built by debootstrap in {time.monotonic() - started:.0f}s")
    return tarball


def image(root: Path, log=print) -> str:
    """The base image in this rig's storage (imported from the cached tarball)."""
    tarball = base_tarball(log)
    ref = f"{IMAGE}:{tarball.stem.rsplit('-', 1)[1]}"
    podman = engine(root)
    if _run([*podman, "image", "exists", ref], check=False).returncode == 0:
        return ref
    for sub in ("storage", "run", "tmp"):
        (storage(root) / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.monotonic()
    _run([*podman, "import", str(tarball), ref], timeout=300)
    log(f"container image {ref} imported in {time.monotonic() - started:.1f}s")
    return ref


def run(root: Path, name: str, args: list[str], command: list[str], log=print) -> str:
    """``podman run -d`` one labelled container on the host network; its id."""
    podman = engine(root)
    _run([*podman, "rm", "-f", "--ignore", name], check=False)
    ulimits = [f"--ulimit={u}" for u in ULIMITS]
    argv = [*podman, "run", "-d", "--name", name, "--label", f"certdeploy-sandbox={root}"]
    argv += ["--init", "--network", "host", *ulimits, *args, image(root, log), *command]
    return _run(argv, timeout=120).stdout.strip()


def remove_all(root: Path, log=print) -> list[str]:
    """Remove every container of this rig, then its container storage."""
    base = storage(root)
    if not base.exists() or not shutil.which("podman"):
        return []
    podman = engine(root)
    res = _run([*podman, "ps", "-aq", "--filter", f"label=certdeploy-sandbox={root}"], check=False)
    ids = res.stdout.split()
    if ids:
        _run([*podman, "rm", "-f", "-t", "5", *ids], check=False, timeout=120)
        log(f"containers removed: {len(ids)}")
    shutil.rmtree(base, ignore_errors=True)
    return ids


# ----------------------------------------------------------------------------- the sample app


def site_packages() -> str:
    """The venv's packages (cassandra-driver): the image's python3 is the same 3.11."""
    return sysconfig.get_paths()["purelib"]


def app_command(name: str, tls: str, state: str) -> list[str]:
    return [
        "python3",
        "-m",
        "sandbox.client_app",
        "run",
        "--name",
        name,
        "--cert",
        f"{tls}/client.pem",
        "--key",
        f"{tls}/client.pem",
        "--ca",
        f"{tls}/ca.pem",
        "--status",
        f"{state}/status.json",
    ]


def start_app(
    root: Path,
    name: str,
    host_tls: Path,
    host_state: Path,
    *,
    container_tls="/etc/cdapp/tls",
    single_file: bool = False,
    log=print,
) -> str:
    """Run the sample Python app in container ``name``: ``host_tls`` mounted read-only at
    ``container_tls`` (or, ``single_file``, only its ``client.pem`` bind-mounted on its own:
    the trap validation refuses), ``host_state`` (its status file) read-write."""
    uid = USERS["app"]
    for path in (host_tls, host_state):
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, uid, uid)
        path.chmod(0o700)
    if single_file:
        tls_mounts = [
            "-v",
            f"{host_tls}/client.pem:{container_tls}/client.pem:ro",
            "-v",
            f"{host_tls}/ca.pem:{container_tls}/ca.pem:ro",
        ]
    else:
        tls_mounts = ["-v", f"{host_tls}:{container_tls}:ro"]
    args = [
        "--user",
        f"{uid}:{uid}",
        *tls_mounts,
        "-v",
        f"{host_state}:/state",
        "-v",
        f"{REPO}:/opt/certdeploy:ro",
        "-v",
        f"{site_packages()}:/opt/site:ro",
        "-e",
        "PYTHONPATH=/opt/certdeploy:/opt/site",
        "-e",
        "PYTHONDONTWRITEBYTECODE=1",
        "-w",
        "/opt/certdeploy",
    ]
    return run(root, name, args, app_command(name, container_tls, "/state"), log)
