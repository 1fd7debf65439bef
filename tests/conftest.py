"""Shared test setup: quiet logging at exit. ``certdeploy_core`` and the repo are importable
through pytest's ``pythonpath`` setting (setup.cfg), the same package name Salt's loader uses."""

import logging

# Salt's handlers log to closed streams at interpreter exit; that noise hides real output.
logging.raiseExceptions = False
