"""The ``salt.loader`` entry point of an installed certdeploy wheel (route 2; route 1 is
file_roots + ``saltutil.sync_all``). Salt calls :func:`dirs` and loads the execution module,
state, runner, beacon and ext_pillar from the wheel's copy of the ``_`` directories; the
faces then import this package as installed."""

from __future__ import annotations

import importlib.util
import os

# Salt's loader type -> the directory of the faces in the wheel.
FACES = {
    "modules": "_modules",
    "states": "_states",
    "runners": "_runners",
    "beacons": "_beacons",
    "pillar": "_pillar",
}


def dirs() -> dict:
    """``{loader type: [directory]}`` for the faces shipped in ``certdeploy_salt``."""
    spec = importlib.util.find_spec("certdeploy_salt")
    if spec is None or not spec.submodule_search_locations:
        return {}
    base = list(spec.submodule_search_locations)[0]
    return {
        kind: [os.path.join(base, name)]
        for kind, name in FACES.items()
        if os.path.isdir(os.path.join(base, name))
    }
