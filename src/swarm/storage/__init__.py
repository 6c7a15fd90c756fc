"""Byte stores: put/get/stat/list/delete under string keys, nothing more.

A store knows nothing about backups, encryption or configuration. Implementations:
``LocalStore`` (a directory), ``S3Store`` (any S3-compatible endpoint), ``MemoryStore``
(tests). Cross-cutting behaviour lives in wrappers (``RetryingStore``, ``FaultyStore``).
Every implementation passes the same contract suite (tests/storage/test_contract.py).

May import: swarm.errors, swarm.clock; boto3 only in ``s3``.
"""
from swarm.storage.base import (
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    Store,
    StoreAccessDenied,
    StoreUnavailable,
    validate_key,
)

__all__ = ["ObjectExists", "ObjectInfo", "ObjectNotFound", "Store", "StoreAccessDenied", "StoreUnavailable",
           "validate_key"]
