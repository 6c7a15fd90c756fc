"""The backup repository: the only code that reads or writes backup bytes.

It owns atomicity (manifest written last), integrity (SHA-256 of every stored object,
AEAD tags on every frame), encryption (per-backup data keys wrapped by the KEK) and
locking. The on-disk format is specified in docs/design/repository-format.md.

May import: swarm.storage, swarm.crypto, swarm.model, swarm.errors, swarm.clock.
"""
from swarm.repo.repository import BackupWriter, Repository
from swarm.repo.watch import CatalogueWatch

__all__ = ["BackupWriter", "CatalogueWatch", "Repository"]
