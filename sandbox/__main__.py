"""``python -m sandbox up [--apps] [--containers[=app]] [--ssh N]|status|reset|down|issue|apps
start|stop`` — and ``node start|stop N``, the sandbox's node control. ``--containers`` runs
real podman containers (``sandbox/container_rig.py``). ``apps`` are the two sample client
applications (``sandbox/apps.py``). ``issue cass2 [cass3 ...] [--store]`` mints fresh leaves
from the sandbox CA: into files (cert, key, trust per minion) or straight into the master's
store."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sandbox import apps as sample_apps
from sandbox import pki
from sandbox.cassandra import Node, NodeError
from sandbox.rig import DEFAULT_DIR, Rig
from sandbox.salt_rig import BIN

CLUSTER = "certdeploy-sandbox"


def print_status(rig: Rig, status: dict) -> bool:
    ok = True
    print("Ring (nodetool status via cass1):")
    for row in status["ring"]:
        print(f"  {row['code']}  {row['address']:<10} {row['dc']}/{row['rack']}")
        ok &= row["code"] == "UN"
    print("Served certificates (SHA-256, new TLS connections):")
    for name, ports in status["served"].items():
        issued = status["issued"].get(name)
        for label, port in (("client", 9042), ("internode", 7000)):
            fp = ports[label]
            mark = "matches issued" if fp == issued else "DIFFERS from issued"
            ok &= fp == issued
            print(f"  {name} :{port:<5} {fp}  {mark}")
    cql = status["cql"]
    print(f"CQL over mTLS at QUORUM: read k={cql['k']!r} v={cql['v']!r}")
    ok &= cql["v"] == cql["written"]
    return ok


def _write_leaf(directory: Path, leaf, trust) -> dict:
    """cert.pem (leaf + chain), key.pem (0600) and trust.pem in a 0700 directory."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    paths = {}
    for name, data in (
        ("cert", pki.cert_pem(leaf.cert, *leaf.chain)),
        ("key", pki.key_pem(leaf.key)),
        ("trust", pki.cert_pem(trust)),
    ):
        path = directory / f"{name}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        paths[name] = str(path)
    return paths


def issue(rig: Rig, minions: list[str], store: bool, out: Path | None) -> int:
    """Fresh leaves for ``minions`` from the sandbox's issuing CA (valid node certificates:
    IP and DNS SANs, serverAuth + clientAuth)."""
    known = {node.name: node.n for node in rig.all_nodes()}
    known.update({rig.ssh_id(node): node.n for node in rig.ssh_nodes()})
    unknown = [m for m in minions if m not in known]
    if unknown:
        print(
            f"sandbox: unknown minion(s) {unknown}; this sandbox has {sorted(known)}",
            file=sys.stderr,
        )
        return 1
    ca, root = rig.issuing_ca(), rig.root_ca().cert
    for minion in minions:
        leaf = ca.issue_node(known[minion])
        if not store:
            paths = _write_leaf((out or rig.root / "issued") / minion, leaf, root)
            print(json.dumps({"minion": minion, "fingerprint": leaf.fingerprint, **paths}))
            continue
        tmp = Path(tempfile.mkdtemp(prefix="certdeploy-issue-"))
        try:
            paths = _write_leaf(tmp, leaf, root)
            cmd = [str(BIN / "salt-run"), "-c", str(rig.salt_config_dir), "--out=json"]
            cmd += ["certdeploy.store_put", CLUSTER, minion, paths["cert"], paths["key"]]
            cmd += [paths["trust"], "source=sandbox issue"]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # the key leaves no file behind
        if res.returncode != 0:
            print(
                f"sandbox: store_put {minion} failed: {res.stdout[-800:]}{res.stderr[-800:]}",
                file=sys.stderr,
            )
            return 1
        print(json.dumps({"minion": minion, "fingerprint": leaf.fingerprint, "store": CLUSTER}))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"rig directory ({DEFAULT_DIR})"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="issue PKI, start Cassandra nodes and Salt daemons")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--keystore", choices=("pkcs12", "pem"), default="pkcs12")
    up.add_argument("--no-client-auth", action="store_true", help="CQL TLS without client certs")
    up.add_argument(
        "--no-mtls-auth",
        action="store_true",
        help="AllowAllAuthenticator instead of MutualTlsAuthenticator (no roles from certs)",
    )
    up.add_argument("--apps", action="store_true", help="also start the sample client apps")
    up.add_argument(
        "--containers",
        nargs="?",
        const="all",
        choices=("all", "app"),
        help="also run real podman containers: the sample app (cdapp) and, unless 'app', "
        "a Cassandra node (cass4c, its own cluster on 127.0.0.4); see sandbox/container_rig.py",
    )
    up.add_argument(
        "--ssh",
        type=int,
        default=0,
        metavar="N",
        help="serve N nodes (cass2 first) through salt-ssh as <node>-ssh instead of a minion",
    )
    up.add_argument(
        "--ssh-beside",
        action="store_true",
        help="keep those nodes' minions too; the roster goes into salt/etc-ssh (the test rig)",
    )
    apps = sub.add_parser("apps", help="the sample client applications (shop, ledger)")
    apps.add_argument("action", choices=("start", "stop"))
    sub.add_parser("status", help="ring, served fingerprints and a CQL read over mTLS")
    sub.add_parser("reset", help="put the issued certificates, config and pillar back")
    sub.add_parser("down", help="stop everything 'up' started")
    minted = sub.add_parser("issue", help="mint fresh leaves from the sandbox CA")
    minted.add_argument("minions", nargs="+", help="e.g. cass2 cass3")
    minted.add_argument(
        "--store", action="store_true", help="import into the master's store (store_put)"
    )
    minted.add_argument("--out", type=Path, help="directory for the files (<dir>/issued)")
    node = sub.add_parser("node", help="control one Cassandra node (used by the minions' pillar)")
    node.add_argument("action", choices=("start", "stop"))
    node.add_argument("n", type=int)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            client_auth = not args.no_client_auth
            mtls_auth = client_auth and not args.no_mtls_auth
            rig = Rig(
                args.dir,
                args.nodes,
                args.keystore,
                client_auth,
                mtls_auth,
                ssh=args.ssh,
                ssh_beside=args.ssh_beside,
            )
            descriptor = rig.up()
            if args.apps:
                sample_apps.start(rig)
            if args.containers:
                from sandbox import container_rig

                started = container_rig.start(rig, node=args.containers == "all")
                print(f"containers {started['containers']}; their pillar: {started['targets']}")
            print(f"descriptor: {rig.descriptor_path}")
            print(f"try: salt -c {descriptor['salt_config_dir']} '*' test.ping")
            if args.ssh:
                ids = ",".join(rig.ssh_id(n) for n in rig.ssh_nodes())
                print(f"try: salt-ssh -c {rig.ssh_config_dir} -L {ids} certdeploy.status")
            return 0
        rig = Rig.from_descriptor(args.dir)
        if args.command == "status":
            return 0 if print_status(rig, rig.status()) else 1
        if args.command == "reset":
            from sandbox.reset import reset

            print(json.dumps(reset(rig)))
            return 0
        if args.command == "down":
            sample_apps.stop(rig)
            rig.down()
            return 0
        if args.command == "apps":
            if args.action == "start":
                sample_apps.start(rig)
                print(f"pillar for their targets: {rig.root / 'apps' / 'apps.json'}")
            else:
                sample_apps.stop(rig)
            return 0
        if args.command == "issue":
            return issue(rig, args.minions, args.store, args.out)
        target = Node(rig.root, args.n, rig.nodes)
        if args.action == "start":
            print(json.dumps({"node": target.name, "started_seconds": round(target.start(), 1)}))
        else:
            print(json.dumps({"node": target.name, "stopped": target.stop()}))
        return 0
    except (NodeError, RuntimeError, FileNotFoundError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
