"""The renewal figure of ``make bench``: the CA's renewal event to the last node verified.

Per run: a new leaf for every node goes into the master's certificate store
(``salt-run certdeploy.store_put``), then one ``certdeploy/cert/renewed`` event is fired on the
master bus. The real reactor queues it, the master's scheduler starts the rollout after the
coalescing window, and the figure ends when the job record says the last node is deployed and
gated (its ``updated`` time). The rig's coalescing window (6 s) and scheduler tick (3 s) are in
the figure, as they would be in production. Nothing here asserts a number."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox import pki
from sandbox.salt_rig import BIN

CLUSTER = "certdeploy-sandbox"  # the rig's pillar names its cluster so


def _salt_run(rig, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "salt-run"), "-c", str(rig.salt_config_dir), "--out=json", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _store_put(rig, n: int, leaf, tmp: Path) -> None:
    files = {
        "cert": pki.cert_pem(leaf.cert, *leaf.chain),
        "key": pki.key_pem(leaf.key),
        "trust": pki.cert_pem(rig.root_ca().cert),
    }
    paths = []
    for name, data in files.items():
        path = tmp / f"cass{n}.{name}"
        path.touch(mode=0o600)
        path.write_bytes(data)
        paths.append(str(path))
    res = _salt_run(rig, "certdeploy.store_put", CLUSTER, f"cass{n}", *paths, "source=bench")
    if res.returncode != 0:
        raise SystemExit(f"bench: store_put cass{n} failed: {res.stdout[-800:]}")


def _jobs(job_dir: Path) -> set[str]:
    return {p.stem for p in job_dir.glob("*.json")} if job_dir.exists() else set()


def _finished_job(job_dir: Path, known: set, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job_id in sorted(_jobs(job_dir) - known):
            try:
                job = json.loads((job_dir / f"{job_id}.json").read_text())
            except ValueError:
                continue  # being replaced right now
            if job.get("status") != "running":
                return job
        time.sleep(0.2)
    raise SystemExit(f"bench: no rollout finished within {timeout:.0f}s of the renewal event")


def renewals(rig, runs: int) -> list[dict]:
    job_dir = rig.root / "salt" / "cache" / "master" / "certdeploy" / "jobs"
    samples = []
    for n in range(1, rig.nodes + 1):  # from now on bundles come from the store
        rig.set_pillar(n, {})
    try:
        for i in range(runs):
            leaves = {n: rig.issuing_ca().issue_node(n) for n in range(1, rig.nodes + 1)}
            with tempfile.TemporaryDirectory(prefix="certdeploy-bench-") as tmp:
                for n, leaf in leaves.items():
                    _store_put(rig, n, leaf, Path(tmp))
            known = _jobs(job_dir)
            fired = time.time()
            res = _salt_run(
                rig,
                "event.send",
                "certdeploy/cert/renewed",
                f"data={json.dumps({'cluster': CLUSTER})}",
            )
            if res.returncode != 0:
                raise SystemExit(f"bench: event.send failed: {res.stderr[-500:]}")
            job = _finished_job(job_dir, known, timeout=600)
            if job["status"] != "succeeded":
                raise SystemExit(f"bench: the renewal's rollout {job['job_id']}: {job['status']}")
            served = {n: v.get("new_fingerprint") for n, v in job["nodes"].items()}
            wanted = {f"cass{n}": leaf.fingerprint for n, leaf in leaves.items()}
            if served != wanted:
                raise SystemExit(f"bench: the renewal deployed {served}, not {wanted}")
            wall = job["updated"] - fired
            started = job.get("preflight", {}).get("start") or job["created"]
            samples.append({"wall": wall, "queued_s": started - fired})
            print(
                f"  renewal {i + 1}/{runs}: event -> last node verified {wall:.1f}s "
                f"(queue and coalescing {started - fired:.1f}s)",
                flush=True,
            )
    finally:
        # Back to top-file bundles: an emptied store gives no pillar, so later benches' own
        # bundles count again.
        shutil.rmtree(rig.root / "store" / CLUSTER, ignore_errors=True)
        subprocess.run(
            [str(BIN / "salt"), "-c", str(rig.salt_config_dir), "*", "saltutil.refresh_pillar"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    return samples
