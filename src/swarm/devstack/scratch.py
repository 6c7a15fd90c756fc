"""A second, empty swarm deployment on the dev stack: a database with the schema, a versioned
artefact bucket and an empty state directory (``$SWARM_HOME/scratch/<name>/state``). The "dev"
side of a prod → dev import, a ``restore set`` target, or a drill target."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
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
    state_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {"db_url": self.db_url, "objects_bucket": self.objects_bucket, "state_dir": str(self.state_dir),
                "env": {"SWARM_DB_URL": self.db_url, "SWARM_OBJECTS_BUCKET": self.objects_bucket,
                        "SWARM_STATE_DIR": str(self.state_dir)}}


def create_scratch(name: str, db_url: str, endpoint: str | None, access_key: str | None,
                   secret_key: str | None, home: Path) -> Scratch:
    """Create database ``name`` (schema applied), bucket ``<name>-artefacts`` (versioned) and the empty
    directory ``home/scratch/<name>/state``. Refuses if the database exists already, or the state
    directory is not empty, so nothing is ever reused by accident. Steps in that order: a kill -9
    leaves the database (and maybe the bucket) without the directory; the name is then taken and
    another must be picked (``dev down --purge`` removes them all)."""
    if not _NAME.match(name):
        raise ConfigError(f"invalid name {name!r}", hint="Use lower-case letters, digits and _; start with a letter.")
    admin = with_dbname(db_url, "postgres")
    if database_exists(admin, name):
        raise RefusedError(f"database {name} already exists", hint="Pick another name.")
    state_dir = home / "scratch" / name / "state"
    if state_dir.exists() and any(state_dir.iterdir()):
        raise RefusedError(f"the scratch state directory {state_dir} is not empty", hint="Pick another name.")
    create_database(admin, name)
    url = with_dbname(db_url, name)
    apply_migrations(url)
    bucket = f"{name.replace('_', '-')}-artefacts"
    client = make_client(endpoint, access_key, secret_key)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Scratch(url, bucket, state_dir)
