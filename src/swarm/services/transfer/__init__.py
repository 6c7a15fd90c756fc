"""Moving one pipeline run between deployments: ``swarm admin export`` / ``swarm admin import``.

``export.export_run`` reads a run's rows (one snapshot) and its artefacts, scrubs them on
request, and writes one ``.tar.gz`` atomically; ``imports.plan_import`` checks an archive
completely (signature and trusted signer, names, types, limits, every checksum, rows
that belong to the declared run only, schema version, run id conflicts)
without writing, and ``imports.import_run`` executes the plan. The archive format is
``swarm.model.archive``, plus a leading ``signature.json`` (``trust``: this deployment's
Ed25519 export signing key and the exporters it trusts, both in ``SWARM_HOME``); docs in
``docs/export-import.md``.

May import: swarm.platform (run rows, schema), swarm.sources (buckets, connections),
swarm.scrub, swarm.crypto (signing), swarm.model, swarm.errors, swarm.clock.
"""
