"""``make demo``: the main job on a local sandbox, start to finish.

1. Bring up 3 Cassandra 5.0 nodes (client + internode TLS) and the Salt master and minions.
2. Show the ring, the six served fingerprints and a CQL row over mutual TLS.
3. Put a new leaf for every node in its pillar and run ``salt-run certdeploy.rollout`` with
   live progress, under a QUORUM load that counts failed requests.
4. Show the new fingerprints, the summary table and the HTML report; take the sandbox down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sandbox import pki
from sandbox.__main__ import print_status
from sandbox.loadgen import LoadGenerator, stats
from sandbox.rig import Rig
from sandbox.salt_rig import BIN

DEMO_DIR = Path(os.environ.get("CERTDEPLOY_DEMO_DIR", "/tmp/cddemo"))
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"


def salt(rig: Rig, *args: str) -> str:
    cmd = [str(BIN / "salt"), "-c", str(rig.salt_config_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def rollout(rig: Rig) -> dict:
    """Run the rollout with salt-run's own live progress on this terminal."""
    cmd = [str(BIN / "salt-run"), "-c", str(rig.salt_config_dir), "certdeploy.rollout", "cass*"]
    print("$ salt-run certdeploy.rollout 'cass*'", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = time.monotonic()
    for line in proc.stdout:  # salt-run prints each progress event as it happens
        text = line.strip()
        if text.startswith("certdeploy: "):
            print(f"  [{time.monotonic() - started:5.1f}s] {text[12:]}", flush=True)
    proc.wait()
    jobs = sorted((rig.root / "salt" / "cache" / "master" / "certdeploy" / "jobs").glob("*.json"))
    job = json.loads(jobs[-1].read_text())
    return {"returncode": proc.returncode, "job": job}


def main() -> int:
    rig = Rig(DEMO_DIR)
    started = time.monotonic()
    ok = False
    try:
        print(f"== 1. sandbox up in {DEMO_DIR}", flush=True)
        rig.up()
        salt(rig, "*", "saltutil.sync_all")
        print("\n== 2. the cluster as issued", flush=True)
        ok = print_status(rig, rig.status())

        print("\n== 3. new certificates for every node, rolled out under QUORUM load", flush=True)
        ca, root = rig.issuing_ca(), rig.root_ca().cert
        leaves = {n.n: ca.issue_node(n.n) for n in rig.all_nodes()}
        for n, leaf in leaves.items():
            rig.set_pillar(n, {"bundle": pki.bundle_dict(leaf, root)})
            print(f"  cass{n}: pending {leaf.fingerprint}")
        salt(rig, "*", "saltutil.refresh_pillar", "wait=True")
        ARTIFACTS.mkdir(exist_ok=True)
        load = LoadGenerator(rig, ARTIFACTS / "demo-load.json", rate=150).start()
        time.sleep(5)
        t0 = time.time()
        outcome = rollout(rig)
        t1 = time.time()
        ops = load.stop()
        counts = {"before": stats(ops, None, t0), "during": stats(ops, t0, t1)}
        job = outcome["job"]

        print("\n== 4. result", flush=True)
        report = subprocess.run(
            [
                str(BIN / "salt-run"),
                "-c",
                str(rig.salt_config_dir),
                "--out=json",
                "certdeploy.report",
                job["job_id"],
                f"load={json.dumps(counts)}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(report.stdout)
        print(result["table"])
        kept = ARTIFACTS / "demo-report.html"
        shutil.copyfile(result["report"], kept)
        served = rig.served_fingerprints()
        for name, ports in served.items():
            expected = leaves[int(name[4:])].fingerprint
            good = ports == {"client": expected, "internode": expected}
            ok &= good
            print(
                f"  {name} serves {ports['client'][:16]}… on 9042 and 7000: "
                f"{'new certificate' if good else 'NOT the new certificate'}"
            )
        during = counts["during"]
        print(
            f"  QUORUM load during the rollout: {during['ops']} requests, "
            f"{during['failed']} failed, p99 {during['p99_ms']} ms "
            f"(before: p99 {counts['before']['p99_ms']} ms)"
        )
        print(f"  report: {kept}")
        ok &= job["status"] == "succeeded" and during["failed"] == 0
    finally:
        print("\n== 5. sandbox down", flush=True)
        if rig.descriptor_path.exists():
            rig.down()
    print(f"== demo {'OK' if ok else 'FAILED'} in {time.monotonic() - started:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
