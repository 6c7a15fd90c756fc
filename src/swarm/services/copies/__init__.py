"""Off-site copies of the repository: ``swarm admin repo copy`` (once, or following every
interval) and each copy's lag for ``status`` and metrics. The byte-level work, and what a kill -9
leaves, is ``swarm.repo.copy``; the wiring (which copies, their stores and keys) is
``swarm.services.context.copy_targets``."""
