"""Shared test setup: the repo and its ``_utils`` on sys.path, quiet logging at exit."""

import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "_utils"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# Salt's handlers log to closed streams at interpreter exit; that noise hides real output.
logging.raiseExceptions = False
