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
    FAILED = 1  # the operation ran and its check failed (validation mismatch, verify found damage,
    #            `secrets check` found a missing secret or one where it must not be)
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


# ---- the catalogue ------------------------------------------------------------------------------
# One class per failure an operator (or a scheduler, a drill, a metric) may want to act on. The
# ``code`` is stable kebab-case and is what ``--json`` prints as ``error``; the exit code is the
# class's family. A class's docstring is its entry in docs/exit-codes.md (generated:
# ``python -m swarm.errors``; a test checks the file is current).

class ConfigError(SwarmError):
    """Missing or invalid configuration."""

    code = "config"
    exit_code = ExitCode.CONFIG


class InvalidUrl(ConfigError):
    """A URL-valued setting or flag is malformed (named, with where it was set; passwords hidden)."""

    code = "invalid-url"


class KeyError_(SwarmError):
    """The key-encryption key is missing, unreadable, or not the repository's."""

    code = "key"
    exit_code = ExitCode.KEY


class KeyMissing(KeyError_):
    """The key-encryption key file is absent or unreadable, or has unsafe permissions."""

    code = "key-missing"


class KeyMismatch(KeyError_):
    """The key does not open this repository (it was sealed with another key)."""

    code = "key-mismatch"


class KeyUnavailable(KeyError_):
    """The key provider answered but refuses to use the key-encryption key (access denied, a token
    without the key): nothing sealed with it can be read until that changes."""

    code = "key-unavailable"


class KeyRevoked(KeyUnavailable):
    """The key-encryption key is disabled, pending deletion or deleted at its provider (a KMS
    ``KeyState`` other than ``Enabled``): every backup sealed with it is unrecoverable until it is
    enabled again."""

    code = "key-revoked"


class SigningKeyError(KeyError_):
    """The export signing key, or a public key file given to `keys trust`, is unreadable, malformed or not 0600."""

    code = "signing-key"


class IntegrityError(SwarmError):
    """Bytes read back do not match what was written (checksum, AEAD tag, truncation, format)."""

    code = "integrity"
    exit_code = ExitCode.INTEGRITY


class FormatUnsupported(IntegrityError):
    """The repository (or one of its files) has a format this swarm does not read, or must be upgraded."""

    code = "format-unsupported"


class WalUnreadable(IntegrityError):
    """An archived WAL file exists but cannot be read (damaged, truncated): recovery stopped there."""

    code = "wal-unreadable"


class SignatureInvalid(IntegrityError):
    """An import archive's signature does not verify: it was changed after it was signed (never overridable)."""

    code = "signature-invalid"


class LockedError(SwarmError):
    """Another process holds the lock (the message names the holder)."""

    code = "lock-held"
    exit_code = ExitCode.LOCKED


class UnavailableError(SwarmError):
    """A service did not answer.

    ``transient`` tells retry wrappers whether trying again may help."""

    code = "unavailable"
    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = True,
                 details: dict[str, object] | None = None):
        super().__init__(message, hint=hint, details=details)
        self.transient = transient


class KeyProviderUnreachable(UnavailableError):
    """The key provider (a KMS endpoint) cannot be reached; the key itself may be fine."""

    code = "key-provider-unreachable"


class DatabaseUnavailable(UnavailableError):
    """PostgreSQL cannot be reached."""

    code = "database-unavailable"


class RefusedError(SwarmError):
    """A safety check refused the operation; nothing was changed."""

    code = "refused"
    exit_code = ExitCode.REFUSED


class WrongKind(RefusedError):
    """The backup exists but is of another kind than the command works on."""

    code = "wrong-kind"


class TargetNotEmpty(RefusedError):
    """A restore target (database or bucket) holds data and --force was not given."""

    code = "target-not-empty"


class UnsafeTarget(RefusedError):
    """A state restore target that is a file or a symlink, or lies inside (or contains) the state
    directory being protected."""

    code = "unsafe-target"


class DatadirNotEmpty(RefusedError):
    """A physical restore's data directory is not empty, or a server runs in it."""

    code = "datadir-not-empty"


class TargetOutOfRange(RefusedError):
    """A recovery target (time, LSN, xid) is before the oldest backup or after the newest archived WAL."""

    code = "target-out-of-range"


class WalMissing(RefusedError):
    """A WAL segment recovery needs is not in the archive (the message names it)."""

    code = "wal-missing"


class TimelineMismatch(RefusedError):
    """The backup, restore point or timeline asked for is not on the followed timeline's history."""

    code = "timeline-mismatch"


class DrillTargetIsProduction(RefusedError):
    """A drill was pointed at the production database, bucket or state directory (or the DR bucket)
    as its scratch target; drills only ever write to scratch resources."""

    code = "drill-target-is-production"


class ScratchTaken(RefusedError):
    """A drill's scratch resource is already in use: the port is taken, the bucket exists or holds
    objects, the database or directory exists."""

    code = "scratch-taken"


class WalConflict(RefusedError):
    """A different file was offered under a WAL name already archived (both kept)."""

    code = "wal-conflict"


class ClusterMismatch(RefusedError):
    """The repository belongs to another PostgreSQL cluster (another system identifier)."""

    code = "cluster-mismatch"


class CopyMismatch(RefusedError):
    """The place of a repository copy holds something else: another repository, another cluster's WAL or other
    repository secrets (nothing is copied there)."""

    code = "copy-mismatch"


class RestorePointExists(RefusedError):
    """A restore point of that name is recorded already (--replace moves it)."""

    code = "restore-point-exists"


class RestorePointUnknown(RefusedError):
    """No restore point of that name is recorded in the repository."""

    code = "restore-point-unknown"


class HostileArchive(RefusedError):
    """An import archive is unsafe (path escape, link, device, bomb, bad checksum) or of a future schema."""

    code = "hostile-archive"


class UnsignedArchive(RefusedError):
    """An import archive carries no signature (`--allow-unsigned` imports it, with a loud warning)."""

    code = "unsigned-archive"


class UntrustedSigner(RefusedError):
    """An import archive is signed by a key this deployment does not trust (`keys trust`, or `--allow-unsigned`)."""

    code = "untrusted-signer"


class NotFoundError(SwarmError):
    """The named backup, bucket, database, object or run does not exist."""

    code = "not-found"
    exit_code = ExitCode.NOT_FOUND


class BackupNotFound(NotFoundError):
    """No backup has that id (or no backup of the kind needed exists)."""

    code = "backup-not-found"


class StateDirMissing(NotFoundError):
    """The state directory to snapshot (SWARM_STATE_DIR) does not exist or is not a directory."""

    code = "state-dir-missing"


class DatabaseNotFound(NotFoundError):
    """The target database does not exist (pass --create)."""

    code = "database-not-found"


class SourceError(SwarmError):
    """The system being backed up or restored into failed mid-operation."""

    code = "source"
    exit_code = ExitCode.SOURCE


class ArchiveFailing(SourceError):
    """WAL archiving (archive_command) fails, so a backup that needs archived WAL cannot complete."""

    code = "archive-failing"


class RecoveryFailed(SourceError):
    """A restored server stopped or timed out before reaching its recovery target."""

    code = "recovery-failed"


class ValidationFailed(SwarmError):
    """The operation completed but its check did not hold (row counts differ, verify failed)."""

    code = "validation-failed"
    exit_code = ExitCode.FAILED


class DrObjectsMissing(ValidationFailed):
    """A drill --from-dr found the DR bucket lacking objects of the recovery point (how many is named)."""

    code = "dr-objects-missing"


class Interrupted(SwarmError):
    """Interrupted (Ctrl-C, SIGTERM)."""

    code = "interrupted"
    exit_code = ExitCode.INTERRUPTED


# ---- the generated document -------------------------------------------------------------------
MEANINGS: dict[ExitCode, tuple[str, str]] = {
    ExitCode.OK: ("done, and every check held", ""),
    ExitCode.FAILED: ("the operation ran and its check failed",
                      "`verify` found a damaged object or a `--restore-test` failed; restored row counts differ; "
                      "`wal status` found a gap, a conflict or failing archiving"),
    ExitCode.USAGE: ("bad command line", "unknown option; an option that does not apply to the command "
                                         "(`restore postgres --physical` names `restore physical`)"),
    ExitCode.CONFIG: ("missing or invalid configuration",
                      "no `SWARM_DB_URL`; a malformed URL in any setting or flag (`SWARM_DB_URL`/`--db-url`, "
                      "`--target-db`, `SWARM_BACKUP_REPO`, `SWARM_KEY_URL`, `SWARM_*_ENDPOINT`); S3 access denied"),
    ExitCode.KEY: ("missing or wrong encryption key",
                   "key file absent, mode not 0600, repository sealed with another key"),
    ExitCode.INTEGRITY: ("repository content damaged or of an unknown format",
                         "manifest fails its checksum during restore; archived WAL that cannot be read"),
    ExitCode.LOCKED: ("another process holds the lock", "a second backup while one runs (the message names "
                                                       "the holder)"),
    ExitCode.UNAVAILABLE: ("a service cannot be reached (after retries)", "PostgreSQL down, S3 endpoint unreachable"),
    ExitCode.REFUSED: ("a safety check refused the operation; nothing was changed",
                       "a backup of the wrong kind for the command; restore into a non-empty database without "
                       "`--force`; a PITR target outside the recoverable range, a missing WAL segment, an unknown "
                       "restore point; `objects restore --at` before the bucket existed; a conflicting WAL segment; "
                       "a hostile import archive"),
    ExitCode.NOT_FOUND: ("the named backup, bucket, database or object does not exist",
                         "`backups show <unknown id>`; `restore postgres --target-db` naming a missing database "
                         "without `--create`; `restore objects --target-bucket` naming a missing bucket"),
    ExitCode.SOURCE: ("the source failed mid-operation",
                      "`pg_dump` killed, server stopped during a backup; WAL archiving failing; a restored server "
                      "that stopped before its target"),
    ExitCode.INTERNAL: ("a bug in swarm (a traceback is printed)", "any exception that is not one of swarm's "
                                                                   "typed errors"),
    ExitCode.INTERRUPTED: ("interrupted (Ctrl-C)", ""),
}

RULES = """\
## Rules that hold for every command

- **Missing is 9, wrong kind is 8.** A backup id, bucket, database, key or run that does not
  exist is NOT_FOUND (9); a backup that exists but is of another kind than the command
  restores is REFUSED (8, `wrong-kind`), whichever restore is asked.
- **A malformed URL is 3, before anything is contacted.** Every URL-valued setting is parsed
  when the settings are loaded (`src/swarm/config/urls.py`), and `--target-db` when the
  restore is planned. The message names the setting as it was given (`--db-url`,
  `SWARM_DB_URL`, `[database] url`), where it came from (command line, environment, or the
  config file's path), what is wrong, and the value with every password replaced by `***`
  (in the user info, `?password=` / `?sslpassword=`, or `password=` of a key=value string);
  the hint shows a valid example. With `--json`, `details` holds
  `{"setting", "source", "value", "problem"}`. A malformed URL in any setting fails every
  command that loads the settings, like an unreadable config file.
- **The error code is specific, the exit code is its family.** A scheduler, a drill or a
  metric can act on `error` (below); the exit code stays the family's, so scripts written
  against exit codes keep working.
- **A traceback is a bug.** Exit 70 only ever comes with a traceback; please report it.
"""


def catalogue() -> list[type[SwarmError]]:
    """Every error class loaded so far (swarm's modules only), by exit code then code."""
    seen: list[type[SwarmError]] = []
    todo: list[type[SwarmError]] = [SwarmError]
    while todo:
        c = todo.pop()
        for sub in c.__subclasses__():
            if sub not in seen and sub.__module__.startswith("swarm."):
                seen.append(sub)
                todo.append(sub)
    return sorted(seen, key=lambda c: (int(c.exit_code), c.code))
