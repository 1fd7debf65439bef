"""A steady QUORUM read/write load over mutual TLS, in its own process, counting failures.

It uses cassandra-driver with its normal retry and load-balancing policies (token-aware,
DC-aware round robin) and statements marked idempotent, which is what a well-behaved client
application does. It alternates a write and a read of the same key at a fixed rate and
records every operation's outcome; ``stats()`` splits them into windows.

    python -m sandbox.loadgen --dir /tmp/cdsb --rate 150 --out /tmp/load.json
    (SIGTERM or SIGINT stops it and writes the results)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _utils.certdeploy_core import cql
from sandbox.rig import Rig


def run(rig: Rig, rate: float, out: Path, duration: float | None = None, tls=None) -> None:
    """``tls``: optional ``(cafile, certfile, keyfile)`` instead of the sandbox's own client."""
    from cassandra import ConsistencyLevel

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    cluster = cql.cluster(
        [n.address for n in rig.all_nodes()],
        _context(tls) if tls else rig.cql_context(),
        consistency=ConsistencyLevel.QUORUM,
        request_timeout=10,
    )
    session = cluster.connect()
    session.execute(
        "CREATE KEYSPACE IF NOT EXISTS loadgen WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
    )
    session.execute("CREATE TABLE IF NOT EXISTS loadgen.kv (k int PRIMARY KEY, v text)")
    write = session.prepare("INSERT INTO loadgen.kv (k, v) VALUES (?, ?)")
    read = session.prepare("SELECT v FROM loadgen.kv WHERE k = ?")
    write.is_idempotent = read.is_idempotent = True
    ops: list[tuple] = []  # (start epoch, latency ms, kind, ok, error)
    interval = 1.0 / rate
    started = time.time()
    next_at, i = time.monotonic(), 0
    _write_json(out, {"ready": True, "started": started, "ops": []})
    while not stop["now"] and (duration is None or time.time() - started < duration):
        key = i % 1000
        kind = "write" if i % 2 == 0 else "read"
        t0 = time.time()
        try:
            if kind == "write":
                session.execute(write, (key, f"v{i}"))
            else:
                session.execute(read, (key,))
            ops.append((t0, (time.time() - t0) * 1000, kind, True, None))
        except Exception as exc:  # noqa: BLE001 - every failed request counts
            ops.append((t0, (time.time() - t0) * 1000, kind, False, f"{type(exc).__name__}: {exc}"))
        i += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()  # fell behind: do not burst to catch up
    cluster.shutdown()
    _write_json(out, {"ready": True, "started": started, "stopped": time.time(), "ops": ops})


def _context(tls):
    import ssl

    cafile, certfile, keyfile = tls
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def stats(ops: list, start: float | None = None, end: float | None = None) -> dict:
    """Counts and latency percentiles of the operations started in [start, end)."""
    window = [o for o in ops if (start is None or o[0] >= start) and (end is None or o[0] < end)]
    latencies = sorted(o[1] for o in window if o[3])
    span = (window[-1][0] - window[0][0]) if len(window) > 1 else 0

    def pct(p):
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)
            if latencies
            else None
        )

    failures = [o for o in window if not o[3]]
    return {
        "ops": len(window),
        "failed": len(failures),
        "ops_per_s": round(len(window) / span, 1) if span else None,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": sorted({o[4] for o in failures})[:5],
    }


class LoadGenerator:
    """Start/stop the generator as a child process (so its GIL and sockets are its own)."""

    def __init__(self, rig: Rig, out: Path, rate: float = 150, tls=None):
        self.rig, self.out, self.rate, self.tls = rig, Path(out), rate, tls
        self.proc = None

    def start(self, timeout: float = 60) -> LoadGenerator:
        self.out.unlink(missing_ok=True)
        repo = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.loadgen",
                "--dir",
                str(self.rig.root),
                "--rate",
                str(self.rate),
                "--out",
                str(self.out),
                *(["--tls", *map(str, self.tls)] if self.tls else []),
            ],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=open(self.out.with_suffix(".log"), "wb"),
        )
        deadline = time.monotonic() + timeout
        while not self.out.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"load generator did not start; see {self.out.with_suffix('.log')}"
                )
            time.sleep(0.2)
        return self

    def stop(self) -> list:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return json.loads(self.out.read_text())["ops"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.loadgen")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=150)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--tls", nargs=3, metavar=("CAFILE", "CERT", "KEY"))
    args = parser.parse_args(argv)
    run(Rig.from_descriptor(args.dir), args.rate, args.out, args.duration, args.tls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
