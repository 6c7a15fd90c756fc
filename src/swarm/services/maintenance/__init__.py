"""Repository maintenance that deletes: retention decisions applied and garbage collected (``prune``).

May import ``swarm.repo`` (through ``Repository`` methods only), ``swarm.model`` and ``swarm.services.reporting``.
"""
