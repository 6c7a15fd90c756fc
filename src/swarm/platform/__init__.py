"""swarm itself, as far as backups need it: the schema and its migrations, a generator of
realistic demo data across the three stores, and the small read API.

May import: swarm.model, swarm.errors, swarm.config, swarm.sources (for connections).
"""
