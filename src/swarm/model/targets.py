"""Point-in-time recovery targets: what the operator asked for, validated, and how PostgreSQL spells it.

A target is one of: a time (``recovery_target_time``), an LSN (``recovery_target_lsn``), a
transaction id (``recovery_target_xid``), a named restore point (``recovery_target_name``),
or the end of the archived WAL (``latest``: no recovery_target_* at all). Pure: parsing and
formatting only; the decision which backup serves it lives in the PITR service.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from swarm.model.wal import Lsn

KINDS = ("time", "lsn", "xid", "name", "latest")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


@dataclass(frozen=True)
class RecoveryTarget:
    kind: str
    value: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown recovery target kind {self.kind!r}")
        if self.kind == "latest":
            if self.value:
                raise ValueError("the 'latest' target takes no value")
            return
        if not self.value:
            raise ValueError(f"a {self.kind} target needs a value")
        if self.kind == "time":
            parse_time(self.value)
        elif self.kind == "lsn":
            Lsn.parse(self.value)
        elif self.kind == "xid":
            if not self.value.isdigit() or not 3 <= int(self.value) < (1 << 64):
                raise ValueError(f"not a transaction id: {self.value!r} (a number, 3 or more)")
        elif self.kind == "name" and not _NAME_RE.match(self.value):
            raise ValueError(f"not a restore point name: {self.value!r} (letters, digits, _ . : -; up to 63)")

    @property
    def time(self) -> datetime | None:
        return parse_time(self.value) if self.kind == "time" else None

    @property
    def lsn(self) -> Lsn | None:
        return Lsn.parse(self.value) if self.kind == "lsn" else None

    @property
    def xid(self) -> int | None:
        return int(self.value) if self.kind == "xid" else None

    def settings(self) -> dict[str, str]:
        """recovery_target_* settings for postgresql.conf (values unquoted)."""
        if self.kind == "latest":
            return {}
        if self.kind == "time":
            t = self.time
            assert t is not None
            return {"recovery_target_time": t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")}
        return {f"recovery_target_{self.kind}": self.value}

    def describe(self) -> str:
        return "the end of the archived WAL" if self.kind == "latest" else f"{self.kind} {self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value}


def parse_time(text: str) -> datetime:
    """ISO 8601 (``2026-11-24T02:31:38Z``, ``2026-11-24 02:31:38.123+00:00``); naive means UTC."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    if re.search(r"[+-]\d\d$", t):
        t += ":00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError as exc:
        raise ValueError(f"not a time: {text!r} (ISO 8601, e.g. 2026-11-24T02:31:38Z)") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def from_options(*, time: str | None = None, lsn: str | None = None, xid: str | None = None,
                 name: str | None = None, latest: bool = False) -> RecoveryTarget:
    """Exactly one of the options must be given; raise ValueError naming the conflict otherwise."""
    given = [(k, v) for k, v in (("time", time), ("lsn", lsn), ("xid", xid), ("name", name)) if v]
    n = len(given) + (1 if latest else 0)
    if n != 1:
        raise ValueError("give exactly one recovery target: --target-time, --target-lsn, --target-xid, "
                         "--target-name or --target-latest" + (f" (got {n})" if n else ""))
    if latest:
        return RecoveryTarget("latest")
    kind, value = given[0]
    return RecoveryTarget(kind, str(value))
