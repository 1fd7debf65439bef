"""A small real client application for the rig: QUORUM writes and reads over mTLS, the way a
Python service using ``cassandra-driver`` with an ``ssl_context`` does it.

    python -m sandbox.client_app run --name orders --cert C --key K --ca CA --status FILE
    python -m sandbox.client_app run-java --name billing --keystore K.p12 --truststore T.p12 \
        --password-file F --status FILE   # execs the java-driver app (java_client/ClientApp)
    python -m sandbox.client_app health --status FILE     # exit 0 when healthy
    python -m sandbox.client_app reload|restart --status FILE   # its reload and restart
    python -m sandbox.client_app pid --status FILE        # prints its pid (pid_command)

On SIGHUP it reloads its certificate files and moves every connection to them: a new driver
session is built on a fresh context and the old one is shut down after the switch (a reload
alone never moves connections that are already open). Its counters (``ok``, ``failed``, the
fingerprint of the certificate it loaded, ``reloads``) are written atomically to ``--status``
every second; ``health`` reads them. ``reload`` sends the running app SIGHUP; ``restart``
stops it and starts it again, detached, with the arguments it was started with. These are the
commands a ``client`` target's pillar names (``activate``, ``health``, ``pid_command``).

The rollback drill: a file ``<status>.unhealthy`` holding a leaf's SHA-256 makes ``health``
fail while the app runs with that leaf, so a deployment of it does not come back healthy and
certdeploy rolls it back; with the old leaf the app is healthy again.

``run-java`` execs the java-driver 4.19 app in the same process (same pid), which writes the
same status file; it picks up a new keystore by itself (``watch``), see ``ClientApp.java``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from _utils.certdeploy_core import cql

REPO = Path(__file__).resolve().parent.parent
JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
STALE_AFTER = 5.0  # seconds without a successful request = unhealthy


def _context(ca: str, cert: str, key: str) -> tuple[ssl.SSLContext, str]:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    pem = Path(cert).read_text()  # the leaf is the first certificate (a key may come first)
    begin = pem.index("-----BEGIN CERTIFICATE-----")
    first = pem[begin : pem.index("-----END CERTIFICATE-----", begin) + 25]
    der = ssl.PEM_cert_to_DER_cert(first)
    return ctx, hashlib.sha256(der).hexdigest()


class App:
    def __init__(self, args):
        self.args = args
        self.status = {"name": args.name, "pid": os.getpid(), "ok": 0, "failed": 0}
        self.status["argv"] = [a for a in sys.argv[1:]]  # what `restart` starts again
        self.status.update(reloads=0, last_error=None, last_ok=None, fingerprint=None)
        self.status.update(carried(args.status, args.name))
        self.reload_wanted = threading.Event()
        self.stop = threading.Event()
        self.session = self.driver = None

    def connect(self):
        from cassandra import ConsistencyLevel

        ctx, fingerprint = _context(self.args.ca, self.args.cert, self.args.key)
        driver = cql.cluster(
            self.args.contact.split(","),
            ctx,
            consistency=ConsistencyLevel.QUORUM,
            request_timeout=10,
        )
        session = driver.connect()
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS apps WITH replication = "
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
        )
        session.execute("CREATE TABLE IF NOT EXISTS apps.kv (k text PRIMARY KEY, v text)")
        old = self.driver
        self.driver, self.session = driver, session
        self.status["fingerprint"] = fingerprint
        if old is not None:  # switch first, then close: no request is left without a session
            old.shutdown()

    def write_status(self):
        path = Path(self.args.status)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.status, "written": time.time()}))
        os.replace(tmp, path)

    def run(self):
        signal.signal(signal.SIGHUP, lambda *_: self.reload_wanted.set())
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        self.connect()
        interval, i, last_status = 1.0 / self.args.rate, 0, 0.0
        while not self.stop.is_set():
            if self.reload_wanted.is_set():
                self.reload_wanted.clear()
                try:
                    self.connect()
                    self.status["reloads"] += 1
                    # At once, not at the next second's tick: the server already sees the new
                    # identity, so the app's health must already judge the new leaf.
                    self.write_status()
                    last_status = time.monotonic()
                except Exception as exc:  # noqa: BLE001 - keep serving on the old session
                    self.status["last_error"] = f"reload: {type(exc).__name__}: {exc}"[:300]
            key = f"{self.args.name}-{i % 100}"
            try:
                if i % 2 == 0:
                    self.session.execute("INSERT INTO apps.kv (k, v) VALUES (%s, %s)", (key, "v"))
                else:
                    self.session.execute("SELECT v FROM apps.kv WHERE k = %s", (key,))
                self.status["ok"] += 1
                self.status["last_ok"] = time.time()
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                self.status["failed"] += 1
                self.status["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
                # The last few, timed: a bench tells start-up starvation from a rollout's.
                recent = self.status.setdefault("errors", [])
                recent.append({"at": round(time.time(), 3), "error": self.status["last_error"]})
                del recent[:-5]
            i += 1
            if time.monotonic() - last_status >= 1.0:
                self.write_status()
                last_status = time.monotonic()
            time.sleep(interval)
        self.write_status()
        self.driver.shutdown()


def carried(status_file: str, name: str) -> dict:
    """The counters of the process this one replaces (a restart), so ``failed`` counts every
    failure of the app, across restarts; ``restarts`` says how many there were."""
    try:
        before = json.loads(Path(status_file).read_text())
    except (OSError, ValueError):
        return {"restarts": 0}
    if before.get("name") != name:
        return {"restarts": 0}
    keep = {k: int(before.get(k) or 0) for k in ("ok", "failed", "reloads")}
    return {**keep, "restarts": int(before.get("restarts") or 0) + 1}


def healthy(status_file: str) -> tuple[bool, str]:
    try:
        status = json.loads(Path(status_file).read_text())
    except (OSError, ValueError) as exc:
        return False, f"no status in {status_file}: {exc}"
    sick = Path(status_file).with_suffix(".unhealthy")  # the drill: see the module docstring
    if sick.exists() and sick.read_text().strip() == status.get("fingerprint"):
        return False, f"drill: unhealthy while serving with {status['fingerprint'][:16]}"
    age = time.time() - (status.get("last_ok") or 0)
    if age > STALE_AFTER:
        return False, f"no successful request for {age:.0f}s: {status.get('last_error')}"
    return True, f"ok={status['ok']} failed={status['failed']} reloads={status['reloads']}"


def restart(status_file: str, timeout: float = 60) -> int:
    """Stop the app (SIGTERM), start it again detached with its own arguments, and wait until
    the new process has served a request."""
    status = json.loads(Path(status_file).read_text())
    try:
        os.kill(status["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while _alive(status["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = Path(status_file).with_suffix(".log")
    started = time.time()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.client_app", *status["argv"]],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the minion's cmd.run
        )
    while time.monotonic() < deadline:
        now = json.loads(Path(status_file).read_text())
        if now.get("pid") == proc.pid and (now.get("last_ok") or 0) >= started:
            print(f"restarted: pid {proc.pid}")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    print(f"the app did not come back (see {log})")
    return 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


def exec_java(args, argv: list[str]) -> None:
    """Replace this process with the java-driver app: the pid the control commands see stays."""
    java = REPO / ".cache" / "java-client"
    classpath = f"{java / 'classes'}:{java / 'lib'}/*"
    if not (java / "classes" / "ClientApp.class").exists():
        raise SystemExit(f"no {java / 'classes'}/ClientApp.class: run `make bootstrap`")
    command = [JAVA, "-Xmx128m", "-XX:+UseSerialGC", "-cp", classpath, "ClientApp"]
    for key in ("name", "keystore", "truststore", "password_file", "status", "contact", "rate"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    os.execv(JAVA, [*command, "--argv", json.dumps(argv)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.client_app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--name", required=True)
    run.add_argument("--cert", required=True)
    run.add_argument("--key", required=True)
    run.add_argument("--ca", required=True)
    run.add_argument("--status", required=True)
    run.add_argument("--contact", default="127.0.0.1,127.0.0.2,127.0.0.3")
    run.add_argument("--rate", type=float, default=20.0)
    java = sub.add_parser("run-java")
    for key in ("--name", "--keystore", "--truststore", "--password-file", "--status"):
        java.add_argument(key, required=True)
    java.add_argument("--contact", default="127.0.0.1,127.0.0.2,127.0.0.3")
    java.add_argument("--rate", type=float, default=20.0)
    for name in ("health", "reload", "restart", "pid"):
        sub.add_parser(name).add_argument("--status", required=True)
    args = parser.parse_args(argv)
    if args.command == "health":
        ok, message = healthy(args.status)
        print(message)
        return 0 if ok else 1
    if args.command == "pid":  # the target's pid_command
        pid = json.loads(Path(args.status).read_text())["pid"]
        print(pid if _alive(pid) else "")
        return 0 if _alive(pid) else 1
    if args.command == "reload":
        os.kill(json.loads(Path(args.status).read_text())["pid"], signal.SIGHUP)
        return 0
    if args.command == "restart":
        return restart(args.status)
    if args.command == "run-java":
        exec_java(args, list(sys.argv[1:] if argv is None else argv))
    App(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
