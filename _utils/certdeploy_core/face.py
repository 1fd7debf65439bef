"""What the execution modules share: the pillar, the target, the host, the bundle and the
error boundary, built from the Salt dunders a module hands over.

``_modules/certdeploy.py`` (what changes a target) and ``_modules/certdeploy_inspect.py``
(what only looks) are one ``certdeploy`` module to Salt: its loader merges files that share a
``__virtualname__``. Both read Salt only through a :class:`Face` made per call, so the
plumbing lives here once.
"""

from __future__ import annotations

import functools
import inspect
import logging

from salt.exceptions import CommandExecutionError, SaltClientError

from . import material, node, target
from . import pillar_file as shipped

log = logging.getLogger(__name__)


class Face:
    """One call's view of Salt: ``__opts__``, ``__pillar__``, ``__context__``, ``__salt__``."""

    def __init__(self, opts, pillar, context, salt):
        self.opts, self._pillar, self.context, self.salt = opts, pillar, context, salt

    @property
    def minion_id(self) -> str:
        return self.opts["id"]

    def pillar(self):
        """This target's pillar: compiled for this call (``fresh_pillar=True``), the one the
        salt-ssh wrapper shipped, or else the minion's own."""
        return self.context.get("certdeploy.pillar") or self._pillar

    def compile_fresh(self) -> None:
        """Compile this minion's pillar on the master for this call only, as ``state.apply``
        does (``fresh_pillar=True``): a direct call or an orchestration step sees the newest
        bundles without a ``saltutil.refresh_pillar`` first. The minion's own in-memory
        pillar is left as it was.

        The runner does not ask for it: a rollout needs the pillar in two jobs per target
        (facts, then the deployment), and one refresh is one compile on the master where
        this is two. At 50 targets the burst of 49 compiles at a batch's start kept the
        master's request workers from answering Salt's client in time."""
        import salt.pillar

        opts = dict(self.opts)  # the compiler writes saltenv/pillarenv into the opts it gets
        compiler = salt.pillar.get_pillar(
            opts,
            opts.get("grains") or {},
            self.minion_id,
            saltenv=opts.get("saltenv"),
            pillarenv=opts.get("pillarenv"),
        )
        try:
            fresh = compiler.compile_pillar()
        except SaltClientError as exc:
            raise CommandExecutionError(
                f"{self.minion_id}: could not compile this minion's pillar on the master: "
                f"{exc}. Fix: check that the master is up and answers this minion "
                "(salt-run manage.status)"
            ) from exc
        finally:
            getattr(compiler, "destroy", lambda: None)()
        errors = fresh.get("_errors")
        if errors:
            # Only the count: a render error may quote the SLS, and pillar may hold keys.
            raise CommandExecutionError(
                f"{self.minion_id}: its pillar did not compile on the master "
                f"({len(errors)} error(s)); nothing was changed. Fix: read them with "
                f"`salt-run pillar.show_pillar {self.minion_id}` on the master and correct "
                "that SLS or ext_pillar"
            )
        self.context["certdeploy.pillar"] = fresh

    def settings(self) -> dict:
        """Pillar ``certdeploy`` as plain data."""
        return target.plain(self.pillar().get("certdeploy") or {})

    def agentless(self) -> bool:
        return bool(self.pillar().get(shipped.AGENTLESS))

    def target(self, name="cassandra"):
        return target.load_target(self.pillar(), name, self.minion_id)

    def host(self) -> node.Host:
        salt = self.salt

        def run(argv, cwd, timeout):
            return salt["cmd.run_all"](
                list(argv),
                cwd=cwd,
                timeout=timeout,
                python_shell=False,
                output_loglevel="quiet",
                ignore_retcode=True,
            )

        def service(action, name):
            return bool(salt[f"service.{action}"](name))

        def progress(message):
            log.info("certdeploy: %s", message)

        return node.Host(run=run, service=service, cachedir=self.state_dir(), progress=progress)

    def state_dir(self) -> str:
        """The last-deploy record's home: pillar ``certdeploy:state_dir``, else the cachedir;
        agentless ``/var/lib/certdeploy`` (salt-ssh's cachedir is in the thin dir)."""
        configured = self.settings().get("state_dir")
        if configured:
            return str(configured)
        return "/var/lib/certdeploy" if self.agentless() else self.opts["cachedir"]

    def bundle(self, tgt):
        """The new material, from pillar only: a job argument would put the key in the
        master's job cache."""
        settings = self.settings()
        bundle = (settings.get("bundles") or {}).get(tgt.name) or settings.get("bundle")
        return material.read_bundle(tgt, bundle)

    def failed(self, ok) -> None:
        """Make ``salt`` (and orchestrate's ``salt.function``) see a non-success outcome: the
        minion's job return carries retcode 1."""
        if not ok:
            self.context["retcode"] = 1

    def fire(self, tgt, outcome, data) -> None:
        if self.agentless():
            return  # no event bus under salt-ssh: the master fires it from the return
        tag = f"certdeploy/node/{self.minion_id}/{outcome}"
        try:
            self.salt["event.send"](tag, {"target": tgt.name, "node": tgt.node, **data})
        except Exception as exc:  # noqa: BLE001 - a lost event must not fail a deployment
            log.warning("certdeploy: could not fire %s: %s", tag, exc)

    def load_pillar_file(self, path) -> None:
        """Read and delete it; used only when this minion's pillar has no ``certdeploy``."""
        if self._pillar.get("certdeploy"):
            shipped.remove(path)
            log.warning(
                "certdeploy: %s has its own pillar; %s deleted unread", self.minion_id, path
            )
            return
        self.context["certdeploy.pillar"] = shipped.read_and_remove(path, self.minion_id)


def public(func, make):
    """The one error boundary of every public function: certdeploy's errors are already
    Salt's (``certdeploy_core.errors``); a stray ``OSError`` becomes a clean
    ``CommandExecutionError`` naming the minion and the file, never a traceback. It adds
    ``pillar_file=``, the salt-ssh wrapper's pillar (:mod:`.pillar_file`), and
    ``fresh_pillar=True``, this call's own compile (:meth:`Face.compile_fresh`). ``make()``
    gives the calling module's :class:`Face`."""

    @functools.wraps(func)
    def wrapper(*args, pillar_file=None, fresh_pillar=False, **kwargs):
        face = make()
        try:
            if pillar_file:
                face.load_pillar_file(pillar_file)
            elif fresh_pillar:
                face.compile_fresh()
            return func(*args, **kwargs)
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise CommandExecutionError(
                f"{face.minion_id}: {func.__name__}: {exc.strerror or exc}{where}. "
                "Fix: check that path's existence, owner and mode on this minion"
            ) from exc
        finally:
            face.context.pop("certdeploy.pillar", None)  # one call, one pillar

    return _with_call_options(wrapper, func)


def _with_call_options(wrapper, func):
    """Give ``wrapper`` ``func``'s signature plus ``pillar_file=`` and ``fresh_pillar=``:
    Salt checks keyword arguments against the signature it finds behind ``__wrapped__``."""
    signature = inspect.signature(func)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in (("pillar_file", None), ("fresh_pillar", False))
    ]
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])
    del wrapper.__wrapped__
    return wrapper
