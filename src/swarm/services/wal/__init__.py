"""The WAL archive: ``wal push`` (archive_command), ``wal fetch`` (restore_command) and their
fast path for the server's launcher, ``wal stream``, archive inventory and status, and what the
PostgreSQL server user needs to run them (``server_access``).

May import: swarm.repo, swarm.sources (postgres adapters), swarm.model, swarm.config, swarm.errors.
``fastpath`` imports as little as possible: the server starts it once per WAL file.
"""
