"""``make bench``: measured times on the real rig, printed as a table and written as JSON.

Benchmarks are separate from tests on purpose: timings on a shared 2-core box flake, so
nothing here asserts a number; it measures and reports.

    CERTDEPLOY_BENCH_RIG=/tmp/cdsb .venv/bin/python -m bench   # reuse a running sandbox
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _utils.certdeploy_core import job as jobs
from _utils.certdeploy_core import rollout
from bench import planner, renewal, rotate, ssh, syndic
from sandbox import pki
from sandbox.cassandra import JAVA17
from sandbox.rig import Rig
from sandbox.salt_rig import BIN

REPO = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("CERTDEPLOY_BENCH_OUT", REPO / "artifacts" / "bench.json"))
RUNS = {
    "reload": 5,
    "restart": 3,
    "rollback": 3,
    "deterministic": 3,
    "rollout": 3,
    "ssh": 3,
    "renewal": 3,
    "syndic": 2,
}
# CERTDEPLOY_BENCH_ONLY=ssh runs only the agentless figures; =planner only the planner's (no rig);
# =renewal only the renewal event's; =rotate only rotate_ca's; =syndic only the syndic's;
# =rollout only the 3-node rollouts by reload (nodetool, then contrib/reloadssl).
ONLY = os.environ.get("CERTDEPLOY_BENCH_ONLY", "")


class Bench:
    def __init__(self, rig: Rig):
        self.rig = rig
        self.results: dict = {}

    def salt(self, tgt: str, *args: str, timeout: int = 600) -> dict:
        etc = str(self.rig.salt_config_dir)
        cmd = [str(BIN / "salt"), "-c", etc, "--out=json", "--static", tgt, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return json.loads(res.stdout or "{}").get(tgt)

    def give_new_leaf(self, n: int) -> str:
        leaf = self.rig.issuing_ca().issue_node(n)
        self.rig.set_pillar(n, {"bundle": pki.bundle_dict(leaf, self.rig.root_ca().cert)})
        self.salt(f"cass{n}", "saltutil.refresh_pillar", "wait=True")
        return leaf.fingerprint

    def node_deploys(self, method: str, runs: int) -> list[dict]:
        samples = []
        for i in range(runs):
            fingerprint = self.give_new_leaf(2)
            started = time.monotonic()
            ret = self.salt(
                "cass2", "certdeploy.deploy", "skip_cross_trust=True", f"method={method}"
            )
            wall = time.monotonic() - started
            if not isinstance(ret, dict) or ret.get("outcome") != "deployed":
                raise SystemExit(f"bench: {method} deploy {i} did not deploy: {ret}")
            assert ret["verification"]["client"]["served"] == fingerprint
            samples.append({"wall": wall, **ret["timings"]})
            print(f"  {method} deploy {i + 1}/{runs}: {wall:.2f}s", flush=True)
        return samples

    def rollbacks(self, runs: int) -> list[dict]:
        samples = []
        for i in range(runs):
            self.give_new_leaf(2)
            self.salt("cass2", "certdeploy.deploy", "skip_cross_trust=True")
            started = time.monotonic()
            ret = self.salt("cass2", "certdeploy.rollback")
            wall = time.monotonic() - started
            if not isinstance(ret, dict) or not ret.get("verified"):
                raise SystemExit(f"bench: rollback {i} not verified: {ret}")
            samples.append({"wall": wall, "seconds": ret["seconds"]})
            print(f"  rollback {i + 1}/{runs}: {wall:.2f}s", flush=True)
        return samples

    def deterministic_failures(self, runs: int) -> list[dict]:
        """Issue 8's figure: a leaf from a CA the cluster does not trust (cross-trust skipped),
        served, detected, rolled back and proven old again. Goal: <= 15 s in total."""
        samples = []
        for i in range(runs):
            foreign_root = pki.CA.root("bench foreign root")
            leaf = foreign_root.intermediate("bench foreign CA").issue_node(2)
            trust = (self.rig.root_ca().cert, foreign_root.cert)
            self.rig.set_pillar(2, {"bundle": pki.bundle_dict(leaf, *trust)})
            self.salt("cass2", "saltutil.refresh_pillar", "wait=True")
            started = time.monotonic()
            ret = self.salt("cass2", "certdeploy.deploy", "skip_cross_trust=True")
            wall = time.monotonic() - started
            if not isinstance(ret, dict) or ret.get("outcome") != "rolled_back":
                raise SystemExit(f"bench: foreign-CA deploy {i} was not rolled back: {ret}")
            if not ret["verification"].get("deterministic"):
                raise SystemExit(f"bench: foreign-CA deploy {i} waited out its timeout: {ret}")
            t = ret["timings"]
            samples.append(
                {
                    "wall": wall,
                    "activate_to_old_served": t["activate"] + t["verify"] + t["rollback"],
                    "verify": t["verify"],
                    "rollback": t["rollback"],
                }
            )
            print(
                f"  foreign-CA leaf {i + 1}/{runs}: {wall:.2f}s (verify {t['verify']:.1f}s, "
                f"rollback {t['rollback']:.1f}s)",
                flush=True,
            )
        self.rig.set_pillar(2, {})
        self.salt("cass2", "saltutil.refresh_pillar", "wait=True")
        return samples

    def jmx_reload(self, n: int) -> dict:
        """Node ``n``'s target keys for ``control.reloadssl`` = contrib/reloadssl (nodetool's
        one JMX call without nodetool's JVM), compiled here once."""
        classes = REPO / ".cache" / "reloadssl"
        source = REPO / "contrib" / "reloadssl" / "ReloadSsl.java"
        built = classes / "ReloadSsl.class"
        if not built.exists() or built.stat().st_mtime < source.stat().st_mtime:
            javac = Path(JAVA17).with_name("javac")
            subprocess.run([str(javac), "-d", str(classes), str(source)], check=True)
        pillar = self.rig.pillar_for(self.rig.node(n))["certdeploy"]["targets"]["cassandra"]
        control = dict(pillar["control"])
        control["reloadssl"] = [
            str(JAVA17), "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", str(classes),
            "ReloadSsl", "127.0.0.1", str(self.rig.node(n).jmx_port),
        ]  # fmt: skip
        return {"control": control}

    def rollouts(self, method: str, runs: int, jmx_reload: bool = False) -> list[dict]:
        """Whole-cluster rollouts; overhead = wall / sum of the nodes' own activate + verify.
        ``jmx_reload``: the nodes reload through ``control.reloadssl`` (contrib/reloadssl)
        instead of ``nodetool reloadssl`` (the next pillar write puts the default back)."""
        samples = []
        etc = str(self.rig.salt_config_dir)
        for i in range(runs):
            for n in range(1, self.rig.nodes + 1):
                leaf = self.rig.issuing_ca().issue_node(n)
                self.rig.set_pillar(
                    n,
                    {"bundle": pki.bundle_dict(leaf, self.rig.root_ca().cert)},
                    target=self.jmx_reload(n) if jmx_reload else None,
                )
            self.salt("*", "saltutil.refresh_pillar", "wait=True")
            cmd = [
                str(BIN / "salt-run"),
                "-c",
                etc,
                "--out=json",
                "certdeploy.rollout",
                "cass*",
                f"method={method}",
            ]
            started = time.monotonic()
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
            wall = time.monotonic() - started
            jobs_dir = self.rig.root / "salt" / "cache" / "master" / "certdeploy" / "jobs"
            job = json.loads(sorted(jobs_dir.glob("*.json"))[-1].read_text())
            if res.returncode != 0 or job["status"] != "succeeded":
                raise SystemExit(f"bench: rollout {method} {i} failed: {res.stdout[-2000:]}")
            own = sum(
                (v.get("timings") or {}).get("activate", 0)
                + (v.get("timings") or {}).get("verify", 0)
                for v in job["nodes"].values()
            )
            spent = rollout.timings(jobs.Job(job))  # what the rollout's summary reports
            preflight, gates = spent["preflight"], spent["gates"]
            samples.append(
                {
                    "wall": wall,
                    "job_wall": job["updated"] - job["created"],
                    "nodes_activate_verify": own,
                    "overhead_ratio": wall / own,
                    "preflight": preflight,
                    "gates": gates,
                }
            )
            print(
                f"  rollout {method} {i + 1}/{runs}: {wall:.1f}s (ratio {wall / own:.1f}; "
                f"pre-flight {preflight}s, gates "
                + ", ".join(f"{seconds:.2f}s" for seconds in gates)
                + ")",
                flush=True,
            )
        return samples

    def run(self) -> dict:
        print(f"planner on a synthetic {planner.NODES}-node cluster", flush=True)
        for case, samples in planner.planner().items():
            self.results[f"plan 10k: {case}"] = samples
        if ONLY == "planner":
            return self.results
        self.salt("*", "saltutil.sync_all")
        if ONLY == "renewal":
            self.results["renewal event -> verified"] = renewal.renewals(self.rig, RUNS["renewal"])
            return self.results
        if ONLY == "syndic":
            self.results["3-node rollout via syndic"] = syndic.rollouts(self.rig, RUNS["syndic"])
            return self.results
        if ONLY == "rotate":
            self.results["rotate_ca (3 phases)"] = rotate.rotations(self.rig)
            return self.results
        if self.rig.ssh:
            print("one call, minion vs salt-ssh (the same node)", flush=True)
            self.results.update(ssh.calls(self.rig, RUNS["ssh"]))
            print("node deploy by reload over salt-ssh", flush=True)
            self.results["deploy_reload_ssh"] = ssh.deploys(self.rig, RUNS["ssh"])
            print("3-node rollout by reload, cass2 over salt-ssh", flush=True)
            self.results["rollout_mixed_ssh"] = ssh.mixed_rollouts(self.rig, 2)
        if ONLY == "ssh":
            return self.results
        if ONLY == "rollout":
            for label, jmx in (("rollout_reload", False), ("rollout_reload_jmx", True)):
                print(f"3-node rollout by reload ({label})", flush=True)
                self.results[label] = self.rollouts("reload", RUNS["rollout"], jmx)
            return self.results
        print("node deploy by reload", flush=True)
        self.results["deploy_reload"] = self.node_deploys("reload", RUNS["reload"])
        print("node deploy by restart", flush=True)
        self.results["deploy_restart"] = self.node_deploys("restart", RUNS["restart"])
        print("rollback", flush=True)
        self.results["rollback"] = self.rollbacks(RUNS["rollback"])
        print("deterministic failure (foreign-CA leaf) -> verified rollback", flush=True)
        self.results["deterministic_failure"] = self.deterministic_failures(RUNS["deterministic"])
        print("3-node rollout by reload", flush=True)
        self.results["rollout_reload"] = self.rollouts("reload", RUNS["rollout"])
        # Pre-flight and the health gates, as the rollouts' job records timed them.
        reload_runs = self.results["rollout_reload"]
        self.results["preflight (in rollout)"] = [
            {"wall": s["preflight"]} for s in reload_runs if s["preflight"] is not None
        ]
        self.results["health gate (in rollout)"] = [
            {"wall": g} for s in reload_runs for g in s["gates"]
        ]
        print("3-node rollout by reload, control.reloadssl = contrib/reloadssl", flush=True)
        self.results["rollout_reload_jmx"] = self.rollouts("reload", RUNS["rollout"], True)
        print("3-node rollout by restart", flush=True)
        self.results["rollout_restart"] = self.rollouts("restart", 1)
        print("renewal event -> last node verified (store, reactor, scheduler)", flush=True)
        self.results["renewal event -> verified"] = renewal.renewals(self.rig, RUNS["renewal"])
        print("rotate_ca, phases 1-3, there and back", flush=True)
        self.results["rotate_ca (3 phases)"] = rotate.rotations(self.rig)
        print("3-node rollout by reload from a master of masters, through one syndic", flush=True)
        self.results["3-node rollout via syndic"] = syndic.rollouts(self.rig, RUNS["syndic"])
        return self.results


def summarise(results: dict) -> dict:
    summary = {}
    for name, samples in results.items():
        walls = [s["wall"] for s in samples]
        if not walls:
            continue
        summary[name] = {
            "runs": len(walls),
            "median_s": round(statistics.median(walls), 2),
            "min_s": round(min(walls), 2),
            "max_s": round(max(walls), 2),
        }
        ratios = [s["overhead_ratio"] for s in samples if "overhead_ratio" in s]
        if ratios:
            summary[name]["overhead_ratio"] = round(statistics.median(ratios), 2)
    return summary


def print_table(summary: dict) -> None:
    width = max([22] + [len(name) + 2 for name in summary])
    print(
        f"\n{'measure':<{width}}{'runs':>6}{'median s':>10}{'min s':>8}{'max s':>8}{'overhead':>10}"
    )
    for name, row in summary.items():
        ratio = row.get("overhead_ratio", "")
        print(
            f"{name:<{width}}{row['runs']:>6}{row['median_s']:>10}{row['min_s']:>8}{row['max_s']:>8}"
            f"{ratio:>10}"
        )


def main() -> int:
    reuse = os.environ.get("CERTDEPLOY_BENCH_RIG")
    rig = (
        Rig.from_descriptor(Path(reuse))
        if reuse
        else Rig(Path("/tmp/cdbench"), ssh=1, ssh_beside=True)
    )
    try:
        if not reuse and ONLY != "planner":
            rig.up()
        results = Bench(rig).run()
    finally:
        if not reuse and rig.descriptor_path.exists():
            rig.down()
    summary = summarise(results)
    print_table(summary)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"summary": summary, "samples": results}, indent=2))
    print(f"\nwritten: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
