"""Object storage use cases: bucket policy (apply/check), version-aware replication to the DR
bucket, point-in-time restore and undelete, object backups (inventories pinned in the repository)
and their sampled restore test.

May import: swarm.repo, swarm.sources.objects, swarm.model, swarm.config, swarm.errors, swarm.clock.
"""
