"""certdeploy's pure logic, one package: the Salt faces (``_modules``, ``_states``,
``_runners``, ``_beacons``, ``_pillar``) are thin wrappers over these modules.

``saltutil.sync_utils`` (or ``sync_all``) copies this directory, sub-package and all, to the
minions' and the master's ``extmods/utils``; an installed wheel provides it as a package.
Follow one certificate: ``node`` (validate with ``checks``/``chain``, backup, install,
configure, activate) -> ``verify`` (``probe``) on the minion; ``rollout`` (``plan``, ``job``,
``gate``) on the master.
"""
