"""Backup ids: sortable by time, readable, unique, safe as a storage key component."""
from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from swarm.errors import NotFoundError

_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[a-z][a-z0-9-]{0,30}-[0-9a-f]{6}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def new_backup_id(kind: str, at: datetime) -> str:
    """``20261124T021955Z-pg-logical-3fa9c1``: UTC start time, kind, 24 random bits."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"invalid backup kind {kind!r}")
    return f"{at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{kind}-{secrets.token_hex(3)}"


def is_backup_id(text: str) -> bool:
    return bool(_ID_RE.match(text))


def check_backup_id(text: str) -> str:
    """Return ``text`` if it is a well-formed backup id, else raise NotFoundError."""
    if not is_backup_id(text):
        raise NotFoundError(
            f"{text!r} is not a backup id",
            hint="Backup ids look like 20261124T021955Z-pg-logical-3fa9c1; list them with "
            "`swarm admin backups list`.",
        )
    return text
