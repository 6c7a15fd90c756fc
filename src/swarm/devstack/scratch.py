"""A second, empty swarm deployment on the dev stack: a database with the schema and a
versioned artefact bucket. The "dev" side of a prod → dev import, or a drill target."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from swarm.errors import ConfigError, RefusedError
from swarm.platform.schema import apply_migrations
from swarm.sources.postgres.conn import create_database, database_exists, with_dbname
from swarm.storage.s3 import make_client

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class Scratch:
    db_url: str
    objects_bucket: str

    def to_dict(self) -> dict[str, Any]:
        return {"db_url": self.db_url, "objects_bucket": self.objects_bucket,
                "env": {"SWARM_DB_URL": self.db_url, "SWARM_OBJECTS_BUCKET": self.objects_bucket}}


def create_scratch(name: str, db_url: str, endpoint: str | None, access_key: str | None,
                   secret_key: str | None) -> Scratch:
    """Create database ``name`` (schema applied) and bucket ``<name>-artefacts`` (versioned).
    Refuses if the database exists already, so nothing is ever reused by accident."""
    if not _NAME.match(name):
        raise ConfigError(f"invalid name {name!r}", hint="Use lower-case letters, digits and _; start with a letter.")
    admin = with_dbname(db_url, "postgres")
    if database_exists(admin, name):
        raise RefusedError(f"database {name} already exists", hint="Pick another name.")
    create_database(admin, name)
    url = with_dbname(db_url, name)
    apply_migrations(url)
    bucket = f"{name.replace('_', '-')}-artefacts"
    client = make_client(endpoint, access_key, secret_key)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return Scratch(url, bucket)
