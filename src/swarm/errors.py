"""Typed errors: every failure the operator can see has a code, a message and a hint.

The message says what happened, the hint says what to do next. Only the CLI turns an
error into an exit code (``exit_code``); everything below it raises these and never exits.
SDK exceptions are translated at the boundary with ``raise SwarmError(...) from exc``.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``swarm`` command; stable, documented in docs/exit-codes.md."""

    OK = 0
    FAILED = 1  # the operation ran and its check failed (validation mismatch, verify found damage)
    USAGE = 2  # bad command line (Typer's own code)
    CONFIG = 3  # missing or invalid configuration
    KEY = 4  # missing or wrong encryption key
    INTEGRITY = 5  # repository content damaged or of an unknown format
    LOCKED = 6  # another process holds the lock
    UNAVAILABLE = 7  # a service (PostgreSQL, S3, the repository) cannot be reached
    REFUSED = 8  # a safety check refused the operation (non-empty target, a backup of the wrong kind, ...)
    NOT_FOUND = 9  # the named backup, bucket, database, object or run does not exist
    SOURCE = 10  # the source failed mid-operation (pg_dump died, server stopped)
    INTERNAL = 70  # a bug in swarm: an exception that is not a SwarmError (EX_SOFTWARE)
    INTERRUPTED = 130


class SwarmError(Exception):
    """Base of every error meant for the operator."""

    code: str = "error"
    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, object] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.code, "message": self.message, "exit_code": int(self.exit_code)}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class ConfigError(SwarmError):
    code = "config"
    exit_code = ExitCode.CONFIG


class KeyError_(SwarmError):
    """The key-encryption key is missing, unreadable, or not the repository's."""

    code = "key"
    exit_code = ExitCode.KEY


class IntegrityError(SwarmError):
    """Bytes read back do not match what was written (checksum, AEAD tag, truncation, format)."""

    code = "integrity"
    exit_code = ExitCode.INTEGRITY


class LockedError(SwarmError):
    code = "locked"
    exit_code = ExitCode.LOCKED


class UnavailableError(SwarmError):
    """A service did not answer. ``transient`` tells retry wrappers whether trying again may help."""

    code = "unavailable"
    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = True,
                 details: dict[str, object] | None = None):
        super().__init__(message, hint=hint, details=details)
        self.transient = transient


class RefusedError(SwarmError):
    code = "refused"
    exit_code = ExitCode.REFUSED


class NotFoundError(SwarmError):
    code = "not_found"
    exit_code = ExitCode.NOT_FOUND


class SourceError(SwarmError):
    """The system being backed up or restored into failed mid-operation."""

    code = "source"
    exit_code = ExitCode.SOURCE


class ArchiveFailing(SourceError):
    """WAL archiving (archive_command) fails, so a backup that needs archived WAL cannot complete."""

    code = "archive-failing"


class ValidationFailed(SwarmError):
    """The operation completed but its check did not hold (row counts differ, verify failed)."""

    code = "validation_failed"
    exit_code = ExitCode.FAILED


class Interrupted(SwarmError):
    code = "interrupted"
    exit_code = ExitCode.INTERRUPTED
