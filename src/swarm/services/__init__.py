"""Use cases, one sub-package per store: ``postgres`` (logical, physical, PITR), ``wal`` (the
archive), ``objects`` (bucket policy, replication, restore, object backups), ``repository``
(catalogue, verify) and ``transfer`` (export/import of one run). They combine repo, sources and
platform, return result objects and never print; progress goes to an injected ``Reporter``
(``reporting``). ``context`` is the wiring: the one place that turns ``Settings`` into opened
resources.

May import everything below it; nothing here imports swarm.cli, swarm.ui or swarm.devstack.
"""
