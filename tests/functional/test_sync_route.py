"""Route 1, file_roots + ``saltutil.sync_*``: Salt copies ``_utils/certdeploy_core/`` (a
sub-package) into ``extension_modules/utils``, and the module, state, beacon, ext_pillar and
runner all load from the synced copy. Run in a fresh interpreter without this repo on its
path, so nothing but the sync can make ``certdeploy_core`` importable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, sys
import salt.config, salt.loader, salt.utils.extmods

repo, work = sys.argv[1], sys.argv[2]
try:
    import certdeploy_core  # noqa: F401
    raise SystemExit("certdeploy_core importable before any sync: the test would prove nothing")
except ImportError:
    pass
out = {"synced": {}}


def sync(opts, forms):
    for form in forms:
        out["synced"][f"{opts['__role']}:{form}"] = salt.utils.extmods.sync(opts, form)[0]


minion = salt.config.minion_config(None)
minion.update(
    id="cass2",
    file_client="local",
    file_roots={"base": [repo]},
    cachedir=os.path.join(work, "minion-cache"),
    extension_modules=os.path.join(work, "minion-extmods"),
    pillar={"certdeploy": {"targets": {"cassandra": {}, "client": {}}}},
)
sync(minion, ("modules", "states", "beacons", "utils", "pillar"))
assert "certdeploy_core" not in sys.modules
utils = salt.loader.utils(minion)
mods = salt.loader.minion_mods(minion, utils=utils)
states = salt.loader.states(minion, mods, utils, {})
beacons = salt.loader.beacons(minion, mods)
pillars = salt.loader.pillars(minion, mods)
out["module"] = "certdeploy.deploy" in mods and "certdeploy.health" in mods
out["targets"] = mods["certdeploy.targets"]()
out["state"] = "certdeploy.deployed" in states
out["beacon"] = "certdeploy.beacon" in beacons
out["ext_pillar"] = "certdeploy_store" in pillars  # keyed by module name
out["why"] = {
    "module": mods.missing_fun_string("certdeploy.deploy"),
    "beacon": beacons.missing_fun_string("certdeploy.beacon"),
    "ext_pillar": sorted(k for k in pillars if k.startswith("certdeploy")),
}
out["package_file"] = sys.modules["certdeploy_core"].__file__

master = salt.config.master_config(None)
master.update(
    file_roots={"base": [repo]},
    cachedir=os.path.join(work, "master-cache"),
    extension_modules=os.path.join(work, "master-extmods"),
)
sync(master, ("runners", "utils"))
runners = salt.loader.runner(master, utils=salt.loader.utils(master))
out["runner"] = "certdeploy.rollout" in runners
out["why"]["runner"] = runners.missing_fun_string("certdeploy.rollout")
print(json.dumps(out))
"""


def test_sync_copies_the_package_and_every_face_loads_from_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", SCRIPT, str(REPO), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    synced_utils = out["synced"]["minion:utils"]
    assert "utils.certdeploy_core.node" in synced_utils, synced_utils  # the sub-package
    extmods = tmp_path / "minion-extmods" / "utils" / "certdeploy_core"
    assert (extmods / "__init__.py").is_file() and (extmods / "verify.py").is_file()
    assert out["package_file"] == str(extmods / "__init__.py")
    for face in ("module", "state", "beacon", "ext_pillar", "runner"):
        assert out[face], (face, out["why"])
    assert sorted(out["targets"]) == ["cassandra", "client"]
