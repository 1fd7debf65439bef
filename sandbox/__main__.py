"""``python -m sandbox up|status|down`` — and ``node start|stop N``, the sandbox's node control."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.cassandra import Node, NodeError
from sandbox.rig import DEFAULT_DIR, Rig


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
    sub.add_parser("status", help="ring, served fingerprints and a CQL read over mTLS")
    sub.add_parser("down", help="stop everything 'up' started")
    node = sub.add_parser("node", help="control one Cassandra node (used by the minions' pillar)")
    node.add_argument("action", choices=("start", "stop"))
    node.add_argument("n", type=int)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            rig = Rig(args.dir, args.nodes, args.keystore, not args.no_client_auth)
            descriptor = rig.up()
            print(f"descriptor: {rig.descriptor_path}")
            print(f"try: salt -c {descriptor['salt_config_dir']} '*' test.ping")
            return 0
        rig = Rig.from_descriptor(args.dir)
        if args.command == "status":
            return 0 if print_status(rig, rig.status()) else 1
        if args.command == "down":
            rig.down()
            return 0
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
