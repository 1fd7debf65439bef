"""``make bench-scale``: many real targets in one rollout.

N real ``salt-minion`` processes (``app001``…), started in waves beside the 3-node rig, each
with one ``client`` target: a small real application (``sandbox.client_app``, QUORUM writes and
reads over mTLS at ``SCALE_RATE`` requests/s) connected to the cluster under its first
generation's identity. Then one ``salt-run certdeploy.rollout 'app*' target=app nodes='cass*'
max_parallel=<SCALE_PARALLEL>`` deploys a new generation to every app and verifies each from
the server side. After it, every node's ``system_views.clients`` is read once more, from here,
and every app must show up there only under its new role.

Reported (printed and in ``artifacts/bench-scale.json``): the rollout's wall time (minion
start-up not counted), per-target p50/p99 (the minion's own deploy time), the success count,
the master's ``worker_threads``, and the peak memory (PSS, so shared pages count once) of the
master, of the app minions (with their job processes) and of the apps, plus the host's peak
use. The CPU each kind of process used during the rollout is set beside what the same
processes burn idle (``SCALE_IDLE_SECONDS`` of nothing, just before it): packing a fleet onto
one box costs CPU before any work. ``SCALE_STEPS`` (default ``100``; e.g. ``25,50,100``, or
``50,50,50`` for three runs of one size) runs one rollout per size over the first N apps, which
gives the curve. Before each wave the host's ``MemAvailable`` is checked:
below ``SCALE_MIN_FREE_GIB`` no more minions start, and the report says so.

    make bench-scale                                   # its own rig in /tmp/cdscale
    CERTDEPLOY_BENCH_RIG=/tmp/cdsb .venv/bin/python -m bench.scale   # reuse a running rig

Nothing here asserts a number: it measures and reports. The minions, apps, keys, pillar files
and homes it made are removed afterwards (the rig's own minions are left alone).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID

from _utils.certdeploy_core import clients
from _utils.certdeploy_core import job as jobs
from bench.rotate import _last_json
from sandbox import pki, salt_rig
from sandbox.hostfiles import write_private
from sandbox.rig import REPO, Rig

STEPS = [int(s) for s in os.environ.get("SCALE_STEPS", "100").split(",")]
WAVE = int(os.environ.get("SCALE_WAVE", "10"))
PARALLEL = int(os.environ.get("SCALE_PARALLEL", "50"))
RATE = float(os.environ.get("SCALE_RATE", "1"))
IDLE_SECONDS = float(os.environ.get("SCALE_IDLE_SECONDS", "20"))
MIN_FREE_GIB = float(os.environ.get("SCALE_MIN_FREE_GIB", "3"))
OUT = Path(os.environ.get("CERTDEPLOY_BENCH_OUT", REPO / "artifacts" / "bench-scale.json"))
TARGET = "app"  # every app minion's pillar target name
CLIENT_EKU = (ExtendedKeyUsageOID.CLIENT_AUTH,)


def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


class Memory(threading.Thread):
    """Samples, once a second, the PSS of the master, the app minions and the apps (by their
    command lines), and the host's used memory; keeps the peaks."""

    def __init__(self, rig_root: Path):
        super().__init__(daemon=True)
        self.salt_dir = str(rig_root / "salt")
        self.scale_dir = str(rig_root / "scale")
        self.nodes_dir = str(rig_root / "nodes")
        self.peak = {"master": 0.0, "minions": 0.0, "apps": 0.0, "host_used": 0.0}
        self.processes = {"minions": 0}
        self.halt = threading.Event()

    def kind(self, cmdline: str) -> str | None:
        if "salt-master" in cmdline and self.salt_dir in cmdline:
            return "master"
        if "CassandraDaemon" in cmdline and self.nodes_dir in cmdline:
            return "cassandra"
        if "salt-minion" in cmdline and f"{self.salt_dir}/app" in cmdline:
            return "minions"
        if "sandbox.client_app" in cmdline and self.scale_dir in cmdline:
            return "apps"
        return None

    def ours(self):
        """``(proc entry, kind)`` of every process of a known kind that is still there."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                kind = self.kind((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
            if kind is not None:
                yield entry, kind

    def sample(self) -> None:
        sums = {"master": 0.0, "minions": 0.0, "apps": 0.0}
        count = 0
        for entry, kind in self.ours():
            if kind not in sums:
                continue
            try:
                for line in (entry / "smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        sums[kind] += int(line.split()[1]) / 2**20
                        break
            except OSError:
                continue
            count += kind == "minions"
        for kind, gib in sums.items():
            self.peak[kind] = max(self.peak[kind], gib)
        self.processes["minions"] = max(self.processes["minions"], count)
        meminfo = {
            line.split(":")[0]: int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
        }
        used = (meminfo["MemTotal"] - meminfo["MemAvailable"]) / 2**20
        self.peak["host_used"] = max(self.peak["host_used"], used)

    def cpu(self) -> dict:
        """CPU seconds so far, by kind: each process's own and its reaped children's (a
        minion's job processes are forked and reaped by the minion), and the host's busy
        time; the difference of two snapshots is the CPU a span of work cost."""
        tick = os.sysconf("SC_CLK_TCK")
        sums = dict.fromkeys(("master", "minions", "apps", "cassandra"), 0.0)
        for entry, kind in self.ours():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            sums[kind] += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
        busy = [int(f) for f in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        sums["host_busy"] = (sum(busy) - busy[3] - busy[4]) / tick  # all but idle and iowait
        return sums

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(1.0)

    def reset(self) -> None:
        self.peak = dict.fromkeys(self.peak, 0.0)
        self.processes = {"minions": 0}


class Fleet:
    """The app minions, their apps and their pillar, beside a running rig."""

    def __init__(self, rig: Rig):
        self.rig = rig
        self.root = rig.root / "scale"
        self.etc = rig.salt_config_dir
        master = yaml.safe_load((self.etc / "master").read_text())
        self.ret_port, self.worker_threads = master["ret_port"], master.get("worker_threads")
        self.owner = rig.pillar_for(rig.node(1))["certdeploy"]["targets"]["cassandra"]
        self.names: list[str] = []
        self.minion_pids: list[int] = []
        self.generation: dict[str, str] = {}
        self.top_before = (rig.root / "pillar" / "top.sls").read_text()
        self.stopped_at: str | None = None

    # ---------------------------------------------------------------- per app

    def home(self, name: str) -> Path:
        return self.root / name

    def control(self, name: str, action: str) -> list[str]:
        status = str(self.home(name) / "status.json")
        return [sys.executable, "-m", "sandbox.client_app", action, "--status", status]

    def target(self, name: str) -> dict:
        home = self.home(name)
        return {
            "profile": "client",
            "app": name,
            "store_type": "pem",
            "keystore": str(home / "client.pem"),
            "truststore": str(home / "ca.pem"),
            "owner": self.owner["owner"],
            "group": self.owner["group"],
            "identity": f"spiffe://certdeploy-sandbox/{name}/{{generation}}",
            "role": f"{name}_{{generation}}",
            "contact_points": [f"{n.address}:9042" for n in self.rig.all_nodes()],
            "activate": {
                "method": "reload",
                "reload": self.control(name, "reload"),
                "restart": self.control(name, "restart"),
                "cwd": str(REPO),
            },
            "health": self.control(name, "health"),
            "pid_command": self.control(name, "pid"),
            "verify_client": {"cert": str(self.rig.client_cert), "key": str(self.rig.client_key)},
            "verify_timeout": 60,
            "backup_dir": str(home / "backups"),
        }

    def pillar(self, name: str, bundle: dict | None) -> dict:
        data = {
            "cluster": "certdeploy-sandbox",
            "state_dir": str(self.home(name) / "state"),
            "targets": {TARGET: self.target(name)},
        }
        if bundle:
            data["bundles"] = {TARGET: bundle}
        return {"certdeploy": data}

    def leaf(self, name: str, gen: str):
        return self.rig.issuing_ca().issue(
            f"{name}-{gen}", uris=(f"spiffe://certdeploy-sandbox/{name}/{gen}",), eku=CLIENT_EKU
        )

    def grant(self, names: list[str], gen: str) -> None:
        """One CQL session for many ``CREATE ROLE`` + ``ADD IDENTITY`` (the rig's grant)."""
        with self.rig.cql_session() as session:
            for name in names:
                role, identity = f"{name}_{gen}", f"spiffe://certdeploy-sandbox/{name}/{gen}"
                session.execute(
                    f"CREATE ROLE IF NOT EXISTS {role} WITH LOGIN = true AND SUPERUSER = false"
                )
                session.execute(f"ADD IDENTITY IF NOT EXISTS '{identity}' TO ROLE '{role}'")

    # ---------------------------------------------------------------- start and stop

    def write_top(self) -> None:
        top = yaml.safe_load(self.top_before)
        for name in self.names:
            top["base"][name] = [f"certdeploy_nodes.{name}"]
        (self.rig.root / "pillar" / "top.sls").write_text(yaml.safe_dump(top))

    def start_wave(self, names: list[str]) -> None:
        self.grant(names, "g1")
        for name in names:
            home = self.home(name)
            home.mkdir(parents=True, mode=0o700, exist_ok=True)
            leaf = self.leaf(name, "g1")
            write_private(home / "client.pem", pki.pem_keystore(leaf))
            write_private(home / "ca.pem", pki.pem_truststore(self.rig.root_ca().cert))
            self.generation[name] = "g1"
            salt_rig.write_pillar_file(self.rig.root, name, self.pillar(name, None))
            conf_dir = self.rig.root / "salt" / name
            conf_dir.mkdir(parents=True, exist_ok=True)
            config = salt_rig.minion_config(self.rig.root, name, self.ret_port)
            (conf_dir / "minion").write_text(yaml.safe_dump(config))
            self.names.append(name)
            self.minion_pids.append(salt_rig.start_minion(self.rig.root, name))
            argv = ["run", "--name", name, "--cert", str(home / "client.pem")]
            argv += ["--key", str(home / "client.pem"), "--ca", str(home / "ca.pem")]
            argv += ["--status", str(home / "status.json"), "--rate", str(RATE)]
            with open(home / "app.log", "ab") as out:
                subprocess.Popen(
                    [sys.executable, "-m", "sandbox.client_app", *argv],
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        self.write_top()
        salt_rig.wait_for_minions(self.rig.root, names, timeout=180)
        self.sync(names)
        self.wait_apps(names)

    def sync(self, names: list[str], attempts: int = 3) -> None:
        """``saltutil.sync_all`` with a long job timeout (a wave of fresh minions on a loaded
        2-core box needs more than the master's 30 s); minions that did not return are asked
        again."""
        missing = list(names)
        for _ in range(attempts):
            res = salt_rig.salt_cmd(
                self.rig.root, "-L", ",".join(missing), "saltutil.sync_all", "-t", "150",
                "--out=json", "--static", timeout=400,
            )  # fmt: skip
            try:
                synced = json.loads(res.stdout or "{}")
            except ValueError:
                synced = {}
            missing = [n for n in missing if not isinstance(synced.get(n), dict)]
            if not missing:
                return
        raise SystemExit(f"bench-scale: saltutil.sync_all got no return from {missing}")

    def wait_apps(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while self.status(name).get("ok", 0) <= 0:
                if time.monotonic() > deadline:
                    log = (self.home(name) / "app.log").read_text(errors="replace")[-1500:]
                    raise SystemExit(f"bench-scale: app {name} served no request; app.log:\n{log}")
                time.sleep(0.3)

    def status(self, name: str) -> dict:
        try:
            return json.loads((self.home(name) / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self, count: int, log=print) -> None:
        self.root.mkdir(mode=0o700, exist_ok=True)
        names = [f"app{i:03d}" for i in range(1, count + 1)]
        for first in range(0, count, WAVE):
            free = mem_available_gib()
            if free < MIN_FREE_GIB:
                self.stopped_at = (
                    f"stopped at {len(self.names)} minions: MemAvailable {free:.1f} GiB < "
                    f"{MIN_FREE_GIB} GiB"
                )
                log(f"  {self.stopped_at}")
                return
            wave = names[first : first + WAVE]
            started = time.monotonic()
            self.start_wave(wave)
            log(
                f"  minions+apps {len(self.names)}/{count} up ({time.monotonic() - started:.1f}s "
                f"for this wave; MemAvailable {mem_available_gib():.1f} GiB)"
            )

    def stop(self) -> None:
        for name in self.names:
            pid = self.status(name).get("pid")
            if pid:
                try:
                    os.kill(int(pid), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        salt_rig.stop_groups(self.minion_pids)
        (self.rig.root / "pillar" / "top.sls").write_text(self.top_before)
        for name in self.names:
            (self.rig.root / "pillar" / "certdeploy_nodes" / f"{name}.sls").unlink(missing_ok=True)
        salt_rig.salt_cmd(self.rig.root, "-d", "app*", "-y", cli="salt-key", timeout=60)
        subprocess.run(["rm", "-rf", str(self.root)], check=False)
        for name in self.names:
            subprocess.run(["rm", "-rf", str(self.rig.root / "salt" / name)], check=False)

    # ---------------------------------------------------------------- one rollout

    def next_generation(self, names: list[str], gen: str) -> None:
        self.grant(names, gen)
        for name in names:
            bundle = pki.bundle_dict(self.leaf(name, gen), self.rig.root_ca().cert)
            salt_rig.write_pillar_file(self.rig.root, name, self.pillar(name, bundle))
            self.generation[name] = gen
        res = salt_rig.salt_cmd(
            self.rig.root,
            "-L",
            ",".join(names),
            "saltutil.refresh_pillar",
            "wait=True",
            "-t",
            "150",
            "--out=json",
            "--static",
            timeout=300,
        )
        if res.returncode != 0:
            raise SystemExit(f"bench-scale: refresh_pillar failed: {res.stdout[-1000:]}")

    def seen_only_under_new_roles(self, names: list[str]) -> list[str]:
        """From here, not from certdeploy: each app only under its new role on every node."""
        ctx = self.rig.cql_context()
        seen = clients.connections([n.address for n in self.rig.all_nodes()], ctx)
        problems = []
        for name in names:
            mine = lambda role, app=name: bool(role) and role.startswith(f"{app}_")  # noqa: E731
            ok, why = clients.only_under(seen, f"{name}_{self.generation[name]}", mine)
            if not ok:
                problems.append(f"{name}: {'; '.join(why)}")
        return problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def idle_cpu(memory: Memory, seconds: float = IDLE_SECONDS) -> dict:
    """CPU-seconds per second each kind of process burns with no rollout running: the
    minions' schedule and beacon loops, the apps' traffic, Cassandra serving it."""
    before, started = memory.cpu(), time.monotonic()
    time.sleep(seconds)
    spent = time.monotonic() - started
    return {k: round((v - before[k]) / spent, 3) for k, v in memory.cpu().items()}


def rollout(fleet: Fleet, memory: Memory, names: list[str], run: int) -> dict:
    gen = f"r{run}"
    idle = idle_cpu(memory)
    fleet.next_generation(names, gen)
    jobs_dir = fleet.rig.root / "salt" / "cache" / "master" / "certdeploy" / "jobs"
    before = set(jobs_dir.glob("*.json")) if jobs_dir.exists() else set()
    cmd = [str(salt_rig.BIN / "salt-run"), "-c", str(fleet.etc), "--out=json"]
    cmd += ["certdeploy.rollout", ",".join(names), "tgt_type=list", f"target={TARGET}"]
    cmd += ["nodes=cass*", f"max_parallel={PARALLEL}"]
    memory.reset()
    failed_before = {n: fleet.status(n).get("failed", 0) for n in names}
    cpu_before, runner_before = memory.cpu(), _children_cpu()
    started_at, started = time.time(), time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.monotonic() - started
    cpu = {k: round(v - cpu_before[k], 1) for k, v in memory.cpu().items()}
    cpu["salt-run"] = round(_children_cpu() - runner_before, 1)
    peaks = dict(memory.peak)
    minion_processes = memory.processes["minions"]
    new = sorted(set(jobs_dir.glob("*.json")) - before)
    job = json.loads(new[-1].read_text()) if new else {"nodes": {}, "status": "no job record"}
    states = {n: v.get("state") for n, v in job["nodes"].items()}
    per_target = [
        (v.get("timings") or {}).get("total")
        for v in job["nodes"].values()
        if (v.get("timings") or {}).get("total") is not None
    ]
    batches = sorted(
        {(s["start"], s["end"]) for v in job["nodes"].values() for s in v.get("steps") or []}
    )
    problems = fleet.seen_only_under_new_roles(names)
    try:
        answer = _last_json(res.stdout) or {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):  # the runner refused or raised: its message
        answer = {"status": "error", "message": str(answer)[:2000]}
    # The rollout's return: its status and retcode (it has no "ok").
    ok = answer.get("status") == "succeeded" and answer.get("retcode") == 0 and not res.returncode
    result = {
        "targets": len(names),
        "max_parallel": PARALLEL,
        "worker_threads": fleet.worker_threads,
        "wall": round(wall, 1),
        "exit": res.returncode,
        "ok": ok,
        "job_status": job.get("status"),
        "succeeded": sum(1 for s in states.values() if s == jobs.NodeState.DEPLOYED.value),
        "states": {s: list(states.values()).count(s) for s in set(states.values())},
        "seen_under_new_role": len(names) - len(problems),
        "problems_seen": problems[:10],
        "per_target_p50": round(statistics.median(per_target), 2) if per_target else None,
        "per_target_p99": round(percentile(per_target, 99), 2) if per_target else None,
        "per_target_max": round(max(per_target), 2) if per_target else None,
        "batches": [round(end - start, 1) for start, end in batches],
        "preflight": (job.get("preflight") or {}).get("seconds"),
        "preflight_parts": (job.get("preflight") or {}).get("parts"),
        "cpu_seconds": cpu,
        # What the same processes burn doing nothing, per second, and over the rollout's wall:
        # the share of the CPU that packing the fleet onto one box costs before any work.
        "idle_cpu_per_second": idle,
        "idle_cpu_over_wall": {k: round(v * wall, 1) for k, v in idle.items()},
        "cpu_available": round(wall * (os.cpu_count() or 1), 1),
        "peak_pss_gib": {k: round(v, 2) for k, v in peaks.items() if k != "host_used"},
        "peak_host_used_gib": round(peaks["host_used"], 2),
        "peak_minion_processes": minion_processes,
        "app_failed_requests": sum(fleet.status(n).get("failed", 0) for n in names),
        "app_failed_requests_before_rollout": sum(failed_before.values()),
        "app_failures": app_failures(fleet, names, failed_before, started_at),
    }
    if not ok:
        result["stdout_tail"] = res.stdout[-3000:]
        result["runner_message"] = answer.get("message")
    return result


def app_failures(fleet: Fleet, names: list[str], before: dict, started_at: float) -> dict:
    """Each app that failed a request: how many before the rollout (start-up) and during it,
    and its last errors, timed from the rollout's start (negative: before it)."""
    out = {}
    for name in names:
        status = fleet.status(name)
        if status.get("failed"):
            out[name] = {
                "before": before.get(name, 0),
                "during": status["failed"] - before.get(name, 0),
                "errors": [
                    {"t": round(e["at"] - started_at, 1), "error": e["error"][:200]}
                    for e in status.get("errors") or []
                ],
            }
    return out


def report(result: dict) -> None:
    pss = result["peak_pss_gib"]
    print(
        f"  {result['targets']} targets, max_parallel {result['max_parallel']}, master "
        f"worker_threads {result['worker_threads']}: rollout {result['wall']}s "
        f"(pre-flight {result['preflight']}s; batches {result['batches']}), "
        f"{result['succeeded']}/{result['targets']} succeeded, "
        f"{result['seen_under_new_role']}/{result['targets']} seen by the server under their "
        f"new role; per target p50 {result['per_target_p50']}s p99 {result['per_target_p99']}s; "
        f"peak PSS master {pss['master']} GiB, minions {pss['minions']} GiB "
        f"({result['peak_minion_processes']} processes), apps {pss['apps']} GiB; host used "
        f"{result['peak_host_used_gib']} GiB; app requests failed {result['app_failed_requests']}"
        f" ({result['app_failed_requests_before_rollout']} of them before the rollout)",
        flush=True,
    )
    print(
        f"  CPU seconds during the rollout (of {result['cpu_available']} the cores had): "
        + ", ".join(f"{k} {v}" for k, v in result["cpu_seconds"].items()),
        flush=True,
    )
    print(
        "  idle, the same processes burn per second: "
        + ", ".join(f"{k} {v}" for k, v in result["idle_cpu_per_second"].items())
        + "; over the rollout's wall: "
        + ", ".join(f"{k} {v}" for k, v in result["idle_cpu_over_wall"].items()),
        flush=True,
    )
    if result.get("preflight_parts"):
        print(f"  pre-flight round trips: {result['preflight_parts']}", flush=True)
    if result.get("runner_message"):
        print(f"  the runner answered: {result['runner_message']}", flush=True)
    for name, seen in result["app_failures"].items():
        print(f"    {name}: {seen['before']} before, {seen['during']} during: {seen['errors']}")


def main() -> int:
    reuse = os.environ.get("CERTDEPLOY_BENCH_RIG")
    rig = Rig.from_descriptor(Path(reuse)) if reuse else Rig(Path("/tmp/cdscale"))
    results: dict = {"runs": []}
    try:
        if not reuse:
            rig.up()
        fleet = Fleet(rig)
        memory = Memory(rig.root)
        memory.start()
        try:
            print(f"starting up to {max(STEPS)} app minions in waves of {WAVE}", flush=True)
            memory.reset()
            t0 = time.monotonic()
            fleet.start(max(STEPS))
            results["startup"] = {
                "minions": len(fleet.names),
                "seconds": round(time.monotonic() - t0, 1),
                "peak_pss_gib": {k: round(v, 2) for k, v in memory.peak.items()},
                "stopped": fleet.stopped_at,
            }
            for run, size in enumerate(STEPS, start=1):
                names = fleet.names[:size]
                print(f"rollout {run}: {len(names)} client targets", flush=True)
                result = rollout(fleet, memory, names, run)
                report(result)
                results["runs"].append(result)
        finally:
            memory.halt.set()
            fleet.stop()
    finally:
        if not reuse and rig.descriptor_path.exists():
            rig.down()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {OUT}")
    return 0 if all(r["ok"] for r in results["runs"]) and results["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
