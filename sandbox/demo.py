"""``make demo``: bring the sandbox up, show it working, take it down (always).

Prints the ring (3 x UN), the six served fingerprints checked against the issued ones, and a
row read over mutual TLS at QUORUM.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sandbox.__main__ import print_status
from sandbox.rig import Rig

DEMO_DIR = Path(os.environ.get("CERTDEPLOY_DEMO_DIR", "/tmp/cddemo"))


def main() -> int:
    rig = Rig(DEMO_DIR)
    started = time.monotonic()
    ok = False
    try:
        print(f"== sandbox up in {DEMO_DIR}")
        rig.up()
        print("== status")
        ok = print_status(rig, rig.status())
    finally:
        print("== sandbox down")
        if rig.descriptor_path.exists():
            rig.down()
    print(f"== demo {'OK' if ok else 'FAILED'} in {time.monotonic() - started:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
