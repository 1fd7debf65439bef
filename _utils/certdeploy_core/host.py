"""What a profile's steps need from the place the target lives: run a command, control a
service, a private cache directory, and a way to report progress. The execution module builds
one over ``__salt__``; tests build one over plain functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Host:
    """What the steps need from the minion. ``run(argv, cwd, timeout)`` returns a dict with
    ``retcode``, ``stdout``, ``stderr``; ``service(action, name)`` returns bool."""

    run: Callable
    service: Callable
    cachedir: str
    progress: Callable = lambda message: None
