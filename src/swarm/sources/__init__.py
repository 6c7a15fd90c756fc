"""Adapters to the systems we protect: PostgreSQL (client tools and psycopg), object
storage (boto3), the state directory. They yield streams and facts; they never touch the
backup repository (services combine the two).

May import: swarm.model, swarm.errors, swarm.clock, swarm.config.
"""
