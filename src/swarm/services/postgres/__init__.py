"""PostgreSQL use cases: logical backup and restore, physical (base) backup, point-in-time
recovery, and the physical checks ``verify`` runs.

May import: swarm.repo, swarm.sources (postgres adapters), swarm.model, swarm.config, swarm.errors,
swarm.clock, and the sibling service packages (``services.wal`` for the archive).
"""
