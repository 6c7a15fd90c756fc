"""Use cases on the repository as a whole: the catalogue of backups (list, show) and ``verify``
(every object, plus the kind's restore test through ``services.postgres`` / ``services.objects``).

May import: swarm.repo, swarm.model, swarm.errors, and the sibling service packages.
"""
