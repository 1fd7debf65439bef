"""Route 2, pip: the wheel built from this repository (pyproject.toml + setup.cfg), installed
by pip into a fresh venv, gives Salt every face through its ``salt.loader`` entry point, with
no file_roots, no module_dirs and nothing synced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, sys
import salt.config, salt.loader

work = sys.argv[1]
import certdeploy_core  # installed, not synced
out = {"package_file": certdeploy_core.__file__}

minion = salt.config.minion_config(None)
minion.update(
    id="cass2",
    file_client="local",
    cachedir=os.path.join(work, "cache"),
    extension_modules=os.path.join(work, "empty-extmods"),
    pillar={"certdeploy": {"targets": {"cassandra": {}}}},
)
utils = salt.loader.utils(minion)
mods = salt.loader.minion_mods(minion, utils=utils)
out["module"] = "certdeploy.deploy" in mods
out["targets"] = mods["certdeploy.targets"]() if out["module"] else None
out["state"] = "certdeploy.deployed" in salt.loader.states(minion, mods, utils, {})
out["beacon"] = "certdeploy.beacon" in salt.loader.beacons(minion, mods)
out["ext_pillar"] = "certdeploy_store" in salt.loader.pillars(minion, mods)
master = salt.config.master_config(None)
master.update(cachedir=os.path.join(work, "mcache"), extension_modules=os.path.join(work, "mext"))
out["runner"] = "certdeploy.rollout" in salt.loader.runner(master, utils=salt.loader.utils(master))
print(json.dumps(out))
"""


def run(argv, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def test_wheel_installs_and_salt_loads_every_face_from_the_entry_point(tmp_path):
    dist, src = tmp_path / "dist", tmp_path / "src"
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources.
    junk = (".git", ".venv", ".cache", "artifacts", "build", "dist", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*junk))
    # The dev venv's setuptools and wheel (pinned in requirements.txt): no download needed.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
        ],
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("certdeploy-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    site = Path(purelib.stdout.strip())
    # Salt and the other dependencies come from the dev venv; certdeploy only from the wheel.
    (site / "dev-venv-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ]
    )

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = run([str(python), "-W", "ignore", "-c", SCRIPT, str(tmp_path)], cwd=tmp_path, env=env)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["package_file"].startswith(str(site)), out
    for face in ("module", "state", "beacon", "ext_pillar", "runner"):
        assert out[face], (face, out)
    assert out["targets"] == ["cassandra"]
