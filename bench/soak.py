"""``make soak``: N cycles of deploy → verify → rollback → verify on the 3-node rig, under the
QUORUM load generator, and the success rate they give (issue 13).

A cycle is one node's (the nodes take turns): a new leaf from the rig's CA as its pending
bundle, ``certdeploy.deploy`` by reload (every ``RESTART_EVERY``-th cycle by restart), the new
fingerprint proven from the host on 9042 and 7000, ``certdeploy.rollback``, the old one proven
the same way. ``SOAK_PARALLEL`` nodes (default: all 3) run their cycles side by side, one cycle
per node at a time, as a fleet renewing on its own would; a restart cycle runs alone (the others
wait for it), since two nodes down at once is not a state QUORUM survives with RF 3 and a node's
verify rightly refuses a ring with a peer down. A cycle succeeds when all four steps hold. One
that does not must still end on one certificate, verified: both ports serve the keystore on
disk, which is the old or the new leaf, and the ring is all UN; otherwise the soak stops there,
keeps the evidence in the report and exits 1. Every ``SAMPLE_EVERY`` cycles it records the RSS
and open fds of the salt-master's and each salt-minion's process group.

    SOAK_CYCLES=20 CERTDEPLOY_BENCH_RIG=/tmp/cdsb .venv/bin/python -m bench.soak

Report: ``artifacts/soak.json`` (every cycle) and ``artifacts/soak.txt`` (the summary).
Nothing here asserts a time; it measures and reports.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from _utils.certdeploy_core import probe
from bench.__main__ import Bench
from sandbox import pki, procs
from sandbox.loadgen import LoadGenerator, stats
from sandbox.rig import Rig

REPO = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("CERTDEPLOY_SOAK_OUT", REPO / "artifacts"))
CYCLES = int(os.environ.get("SOAK_CYCLES", "500"))
RESTART_EVERY = 50
SAMPLE_EVERY = 50
SETTLE = 90  # seconds a non-success cycle may take to end on one certificate
RATE = 150  # QUORUM ops/s of the load generator
PARALLEL = int(os.environ.get("SOAK_PARALLEL", "3"))


class SoakStop(Exception):
    """A cycle ended on no verified certificate: stop, keep the evidence."""


class Turns:
    """Reload cycles share the rig; a restart cycle has it alone (writer-preferring, so a
    restart is not starved by the other nodes' reloads)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0

    def enter(self, alone: bool) -> None:
        with self._cond:
            if alone:
                self._waiting += 1
                self._cond.wait_for(lambda: not self._alone and not self._shared)
                self._waiting -= 1
                self._alone = True
            else:
                self._cond.wait_for(lambda: not self._alone and not self._waiting)
                self._shared += 1

    def leave(self, alone: bool) -> None:
        with self._cond:
            if alone:
                self._alone = False
            else:
                self._shared -= 1
            self._cond.notify_all()


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)


class Soak(Bench):
    def __init__(self, rig: Rig):
        super().__init__(rig)
        self.ctx = rig.probe_context()
        self.cycles: list[dict] = []
        self.samples: list[dict] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self.turns = Turns()
        self.stop = threading.Event()
        self.stopped: str | None = None

    def salt(self, tgt: str, fun: str, *args: str, timeout: int = 600):
        """One minion call through an in-process ``LocalClient`` (what the runner uses), not
        the ``salt`` CLI: 500 cycles would otherwise spend ~1 s per call starting Python.
        Arguments as the CLI takes them (``key=value`` parsed the same way)."""
        import salt.client
        import salt.utils.args

        client = getattr(self._local, "client", None)
        if client is None:  # one per thread: a LocalClient is not shared across threads
            client = self._local.client = salt.client.LocalClient(
                str(self.rig.salt_config_dir / "master")
            )
        positional, kwargs = salt.utils.args.parse_input(list(args), condition=False)
        kwarg = {k: v for k, v in kwargs.items() if not k.startswith("__")}
        ret = client.cmd(tgt, fun, arg=positional, kwarg=kwarg, timeout=timeout)
        return ret if tgt == "*" else ret.get(tgt)

    def served(self, n: int) -> dict:
        out = {}
        for label, port in (("client", 9042), ("internode", 7000)):
            try:
                out[label] = probe.served_fingerprint(f"127.0.0.{n}", port, self.ctx)
            except probe.ProbeError as exc:
                out[label] = f"ERROR {exc}"
        return out

    def on_disk(self, n: int) -> str | None:
        status = self.salt(f"cass{n}", "certdeploy.status", timeout=120)
        try:
            return status["on_disk"]["keystore"]["fingerprint"]
        except (TypeError, KeyError):
            return None

    def settle(self, n: int, known: set[str]) -> dict:
        """Where a non-success cycle ended: one certificate on both ports and on disk, the
        ring all UN. Polls up to ``SETTLE`` s (a restart may still be coming back)."""
        deadline = time.monotonic() + SETTLE
        while True:
            served, disk = self.served(n), self.on_disk(n)
            try:
                codes = {r["address"]: r["code"] for r in self.rig.ring(via=n % 3 + 1)}
            except Exception as exc:  # noqa: BLE001 - recorded as the evidence
                codes = {"error": str(exc)}
            one = served["client"] == served["internode"] == disk and disk in known
            ring_ok = codes and all(c == "UN" for c in codes.values())
            end = {"served": served, "on_disk": disk, "ring": codes}
            if one and ring_ok:
                return {**end, "verified": True, "on": disk}
            if time.monotonic() > deadline:
                return {**end, "verified": False}
            time.sleep(3)

    def cycle(self, i: int) -> dict:
        n = i % self.rig.nodes + 1
        method = "restart" if (i + 1) % RESTART_EVERY == 0 else "reload"
        rec = {"cycle": i + 1, "node": f"cass{n}", "method": method, "t0": time.time()}
        old = self.served(n)
        rec["old"] = old["client"]
        leaf = self.rig.issuing_ca().issue_node(n)
        self.rig.set_pillar(n, {"bundle": pki.bundle_dict(leaf, self.rig.root_ca().cert)})
        self.salt(f"cass{n}", "saltutil.refresh_pillar", "wait=True")
        rec["new"] = leaf.fingerprint
        problems = []

        t = time.monotonic()
        ret = self.salt(
            f"cass{n}", "certdeploy.deploy", "skip_cross_trust=True", f"method={method}"
        )
        rec["deploy_s"] = round(time.monotonic() - t, 3)
        if isinstance(ret, dict):
            rec["deploy_outcome"] = ret.get("outcome")
            rec["deploy_steps"] = ret.get("timings")
        else:
            rec["deploy_outcome"] = "no answer"
            rec["deploy_answer"] = str(ret)[:2000]
        if rec["deploy_outcome"] != "deployed":
            problems.append(f"deploy: {rec['deploy_outcome']}")
        seen = self.served(n)
        if seen != {"client": leaf.fingerprint, "internode": leaf.fingerprint}:
            problems.append(f"after deploy the host sees {seen}")

        if not problems:
            t = time.monotonic()
            ret = self.salt(f"cass{n}", "certdeploy.rollback")
            rec["rollback_s"] = round(time.monotonic() - t, 3)
            verified = isinstance(ret, dict) and ret.get("verified") is True
            rec["rollback_outcome"] = "verified" if verified else "not verified"
            if not verified:
                rec["rollback_answer"] = str(ret)[:2000]
                problems.append("rollback: not verified")
            seen = self.served(n)
            if seen != {"client": old["client"], "internode": old["client"]}:
                problems.append(f"after rollback the host sees {seen}")

        rec["problems"] = problems
        rec["outcome"] = "success" if not problems else "not success"
        if problems:
            rec["ended"] = self.settle(n, {old["client"], leaf.fingerprint})
            if not rec["ended"]["verified"]:
                rec["outcome"] = "unverified"
        rec["t1"] = time.time()
        return rec

    def sample(self, cycle: int) -> None:
        salt = self.rig.descriptor()["salt"]
        groups = {"master": salt["master_pid"], **salt["minion_pids"]}
        self.samples.append({"cycle": cycle, "at": time.time(), **procs.measure(groups)})

    def run_cycles(self, cycles: int, gen: LoadGenerator) -> None:
        self.sample(0)
        workers = [
            threading.Thread(target=self.worker, args=(w, cycles, gen), name=f"soak-{w}")
            for w in range(min(PARALLEL, self.rig.nodes))
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        if self.stopped:
            raise SoakStop(self.stopped)
        if cycles % SAMPLE_EVERY:
            self.sample(cycles)

    def worker(self, w: int, cycles: int, gen: LoadGenerator) -> None:
        """Cycles ``w, w + P, w + 2P, ...``: with P = 3 each worker keeps to its own node."""
        for i in range(w, cycles, min(PARALLEL, self.rig.nodes)):
            if self.stop.is_set():
                return
            if gen.proc.poll() is not None:
                self.halt(f"the load generator exited ({gen.proc.returncode}) at cycle {i + 1}")
                return
            alone = (i + 1) % RESTART_EVERY == 0
            self.turns.enter(alone)
            try:
                rec = self.cycle(i)
            except Exception as exc:  # noqa: BLE001 - the soak's own failure, kept as evidence
                self.halt(f"cycle {i + 1} raised {type(exc).__name__}: {exc}")
                return
            finally:
                self.turns.leave(alone)
            with self._lock:
                self.cycles.append(rec)
                ran = len(self.cycles)
                done = self.tally()
                took = rec["t1"] - rec["t0"]
                print(
                    f"[{ran}/{cycles}] cycle {i + 1} {rec['node']} {rec['method']}: "
                    f"{rec['outcome']} in {took:.1f}s (deploy {rec.get('deploy_s', '-')}s, "
                    f"rollback {rec.get('rollback_s', '-')}s) | success {done['success']}/{ran}"
                    + (f" | {'; '.join(rec['problems'])}" if rec["problems"] else ""),
                    flush=True,
                )
                if ran % SAMPLE_EVERY == 0:
                    self.sample(ran)
            if rec["outcome"] == "unverified":
                self.halt(
                    f"cycle {i + 1} on {rec['node']} ended on no verified certificate: "
                    f"{rec['ended']}"
                )
                return

    def halt(self, why: str) -> None:
        with self._lock:
            self.stopped = self.stopped or why
        self.stop.set()

    def tally(self) -> dict:
        out = {"success": 0, "not success": 0, "unverified": 0}
        for rec in self.cycles:
            out[rec["outcome"]] += 1
        return out


def steps(cycles: list[dict]) -> dict:
    """p50/p99 seconds per step, by method."""
    table: dict[str, list[float]] = {}
    for rec in cycles:
        m = rec["method"]
        for key in ("deploy_s", "rollback_s"):
            if key in rec:
                table.setdefault(f"{m} {key[:-2]} (wall)", []).append(rec[key])
        for step, seconds in (rec.get("deploy_steps") or {}).items():
            table.setdefault(f"{m} deploy.{step}", []).append(seconds)
        table.setdefault(f"{m} cycle (wall)", []).append(rec["t1"] - rec["t0"])
    return {
        k: {"n": len(v), "p50": pct(v, 0.5), "p99": pct(v, 0.99), "max": round(max(v), 3)}
        for k, v in sorted(table.items())
    }


def growth(samples: list[dict]) -> dict:
    if len(samples) < 2:
        return {}
    first, last = samples[0], samples[-1]
    out = {}
    for name in first["groups"]:
        a, b = first["groups"][name], last["groups"].get(name, {})
        out[name] = {
            "rss_mib": [a["rss_mib"], b.get("rss_mib")],
            "rss_growth_mib": round(b.get("rss_mib", 0) - a["rss_mib"], 1),
            "fds": [a["fds"], b.get("fds")],
            "fd_growth": b.get("fds", 0) - a["fds"],
            "processes": [a["processes"], b.get("processes")],
        }
    return out


HOST_EVENTS = ("virtual machine fork", "drop_caches", "Out of memory", "oom-kill", "hung_task")


def host_events(since: float, until: float) -> list[str]:
    """Kernel lines of the soak's window that stall every process on the box (a VM snapshot,
    dropped caches, the OOM killer), to set beside any failed request. ``dmesg`` times are
    uptime-based, converted here with the boot time."""
    import subprocess

    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
        boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    found = []
    for line in out.splitlines():
        if not line.startswith("[") or not any(e in line for e in HOST_EVENTS):
            continue
        at = boot + float(line[1 : line.index("]")])
        if since <= at <= until:
            found.append(f"{time.strftime('%H:%M:%S', time.gmtime(at))} {line.split('] ', 1)[-1]}")
    return found


def report(soak: Soak, load: dict, stopped: str | None, cycles: int) -> dict:
    tally = soak.tally()
    ran = len(soak.cycles)
    failed_ops = load.pop("failed_ops", [])
    by_cycle = {}
    for op in failed_ops:
        hit = [str(r["cycle"]) for r in soak.cycles if r["t0"] <= op[0] < r["t1"]]
        at = time.strftime("%H:%M:%S", time.gmtime(op[0]))
        by_cycle.setdefault(",".join(hit) or "between cycles", []).append(f"{at} {op[4]}")
    return {
        "cycles_asked": cycles,
        "cycles_run": ran,
        "parallel": min(PARALLEL, soak.rig.nodes),
        "outcomes": tally,
        "by_method": {
            m: sum(1 for r in soak.cycles if r["method"] == m) for m in ("reload", "restart")
        },
        "success_rate_pct": round(100.0 * tally["success"] / ran, 3) if ran else None,
        "load": load,
        "failed_requests_by_cycle": by_cycle,
        "steps_s": steps(soak.cycles),
        "leaks": {"samples": soak.samples, "growth": growth(soak.samples)},
        "non_success": [r for r in soak.cycles if r["outcome"] != "success"],
        "host_events": host_events(min((r["t0"] for r in soak.cycles), default=0), time.time()),
        "stopped": stopped,
    }


def text(rep: dict) -> str:
    lines = [
        f"soak: {rep['cycles_run']}/{rep['cycles_asked']} cycles {rep['by_method']} "
        f"({rep['parallel']} nodes side by side), "
        f"outcomes {rep['outcomes']}, success rate {rep['success_rate_pct']} %",
        f"load (QUORUM): {rep['load']}",
    ]
    if rep["stopped"]:
        lines.append(f"STOPPED: {rep['stopped']}")
    lines.append(f"{'step':<28}{'n':>6}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
    for name, row in rep["steps_s"].items():
        lines.append(f"{name:<28}{row['n']:>6}{row['p50']:>9}{row['p99']:>9}{row['max']:>9}")
    for name, row in rep["leaks"]["growth"].items():
        lines.append(
            f"{name}: RSS {row['rss_mib'][0]} -> {row['rss_mib'][1]} MiB "
            f"({row['rss_growth_mib']:+}), fds {row['fds'][0]} -> {row['fds'][1]} "
            f"({row['fd_growth']:+}), processes {row['processes']}"
        )
    for cycles_then, failures in rep["failed_requests_by_cycle"].items():
        lines.append(f"failed requests during cycles {cycles_then}: {len(failures)}")
        lines += [f"  {f[:160]}" for f in failures]
    for event in rep["host_events"]:
        lines.append(f"host event: {event}")
    for rec in rep["non_success"]:
        lines.append(
            f"cycle {rec['cycle']} {rec['node']} {rec['method']}: {rec['outcome']}: "
            f"{'; '.join(rec['problems'])}; ended {rec.get('ended')}"
        )
    return "\n".join(lines)


def main() -> int:
    reuse = os.environ.get("CERTDEPLOY_BENCH_RIG")
    rig = Rig.from_descriptor(Path(reuse)) if reuse else Rig(Path("/tmp/cdsoak"))
    OUT.mkdir(parents=True, exist_ok=True)
    stopped, load = None, {}
    try:
        if not reuse:
            rig.up()
        soak = Soak(rig)
        soak.salt("*", "saltutil.sync_all")
        gen = LoadGenerator(rig, OUT / "load-soak.json", RATE).start()
        try:
            time.sleep(3)
            soak.run_cycles(CYCLES, gen)
        except SoakStop as exc:
            stopped = str(exc)
        finally:
            ops = gen.stop() if gen.proc.poll() is None else []
            load = stats(ops)
            load["failed_ops"] = [o for o in ops if not o[3]]
            for n in range(1, rig.nodes + 1):
                rig.set_pillar(n)
            soak.salt("*", "saltutil.refresh_pillar", "wait=True")
        rep = report(soak, load, stopped, CYCLES)
    finally:
        if not reuse and rig.descriptor_path.exists() and not stopped:
            rig.down()  # a stopped soak keeps its rig up: the evidence is on it
    (OUT / "soak.json").write_text(json.dumps(rep, indent=2, default=str))
    summary = text(rep)
    (OUT / "soak.txt").write_text(summary + "\n")
    print("\n" + summary + f"\n\nwritten: {OUT / 'soak.json'}, {OUT / 'soak.txt'}")
    bad = stopped or rep["outcomes"]["unverified"] or rep["load"].get("failed")
    return 1 if bad or not rep["cycles_run"] else 0


if __name__ == "__main__":
    sys.exit(main())
