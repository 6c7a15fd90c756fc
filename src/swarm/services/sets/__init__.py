"""Backup sets: the three stores (PostgreSQL, the artefact bucket, the state directory) backed up at
one consistency point, and restored together (docs/sets.md)."""
