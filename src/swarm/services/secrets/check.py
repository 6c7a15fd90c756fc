"""``swarm admin secrets check``: the secrets are where they belong, and nowhere else.

Two halves, one result (``SecretsCheckResult``; ``ok`` is False, and the command exits 1,
when any secret fails or anything is found):

1. **Present and real.** Each secret of the ``SecretsPolicy`` is read from its source
   (``swarm.sources.secretstores``): missing (an unset variable, an absent file, a Secrets
   Manager secret that does not exist, has no ``AWSCURRENT`` value or is scheduled for
   deletion) or unreadable fails; so does a value that is empty, a placeholder or too short
   (``swarm.model.secrets.weakness``). For Secrets Manager, versioning cannot be switched
   off (every ``PutSecretValue`` makes a new version and moves ``AWSCURRENT``'s old value to
   ``AWSPREVIOUS``); what is checked is that the secret is not scheduled for deletion and has
   an ``AWSCURRENT`` version; the number of versions and whether an ``AWSPREVIOUS`` exists (a
   value to roll back to) are reported, and a secret with no previous version gets a warning,
   not a failure.
2. **Kept out.** The value of every secret that could be read (at least
   ``MIN_MATCH_LENGTH`` bytes) is hashed with HMAC-SHA256 under a key made for this run and
   then dropped (``swarm.model.secrets.ValueMatcher``); these places are then read as
   streams, never written anywhere, each file searched for those hashes and for the secret
   shapes of the one scanner (``SecretScanner``, what state snapshots and exports leave out):

   * the config file (``swarm.toml``), if it exists;
   * the live state directory: every file the next ``backup state`` would read (what it
     leaves out by name, and swarm's own files when it is ``SWARM_HOME``, are not read);
   * the newest committed state snapshot, decrypted file by file from the repository (no
     repository configured: listed in ``not_scanned``, a warning);
   * each export archive given (``admin export`` archives; every member streamed and its
     checksum checked against the signed manifest, which is not itself verified here).

   A finding names the place and the file and says which secret's value or which shape
   kind is there, never the value.

Read-only: nothing is written, locked or created (the repository is opened without
creating it and its catalogue is not remembered).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from swarm.errors import SwarmError
from swarm.model.archive import Limits, Member, RunManifest
from swarm.model.secrets import (
    AWS_SM,
    MIN_MATCH_LENGTH,
    SecretScanner,
    SecretsPolicy,
    ValueMatcher,
    weakness,
)
from swarm.repo import Repository
from swarm.repo.tree import FILE, TreeReader
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.state.backup import StateScope, state_snapshots
from swarm.services.transfer import tario
from swarm.sources.secretstores import read_secret
from swarm.sources.state import FileRead, NotRegular, walk
from swarm.sources.state import fs as walk_kinds

OK, MISSING, UNREADABLE, WEAK = "ok", "missing", "unreadable", "weak"
CONFIG, STATE_DIR, SNAPSHOT, EXPORT = "config", "state-dir", "state-snapshot", "export"


@dataclass
class SecretStatus:
    """One secret: where it is kept and what is wrong with it (never its value)."""

    name: str
    source: str
    state: str  # OK, MISSING, UNREADABLE or WEAK
    problem: str | None = None
    length: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == OK

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "ok": self.ok, "state": self.state,
                "problem": self.problem, "length": self.length, "facts": self.facts, "warnings": self.warnings}


@dataclass
class Finding:
    """A secret found where it must not be: ``place`` (CONFIG, STATE_DIR, SNAPSHOT, EXPORT),
    ``where`` (the config file, the state directory, the snapshot's id, the archive), ``path``
    (the file inside it), the secrets whose value is there and the shape kinds seen."""

    place: str
    where: str
    path: str
    secrets: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"place": self.place, "where": self.where, "path": self.path, "secrets": self.secrets,
                "shapes": self.shapes}


@dataclass
class SecretsCheckResult:
    secrets: list[SecretStatus]
    findings: list[Finding]
    scanned: list[dict[str, Any]]
    not_scanned: list[dict[str, str]]
    not_used: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.secrets) and not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "secrets": [s.to_dict() for s in self.secrets],
                "findings": [f.to_dict() for f in self.findings], "scanned": self.scanned,
                "not_scanned": self.not_scanned, "not_used": self.not_used, "seconds": round(self.seconds, 3),
                "warnings": self.warnings}


class _Places:
    """Scans files for the matcher's values and the scanner's shapes; collects findings and counts."""

    def __init__(self, matcher: ValueMatcher, reporter: Reporter) -> None:
        self.matcher = matcher
        self.reporter = reporter
        self.findings: list[Finding] = []
        self.scanned: list[dict[str, Any]] = []
        self._current: dict[str, Any] = {}

    def begin(self, place: str, where: str) -> None:
        self._current = {"place": place, "where": where, "files": 0, "bytes": 0}
        self.scanned.append(self._current)
        self.reporter.stage(f"scanning {place} {where}")

    def file(self, path: str, pieces: Iterable[bytes]) -> None:
        values = self.matcher.scan()
        shapes = SecretScanner()
        n = 0
        for piece in pieces:
            values.feed(piece)
            shapes.feed(piece)
            n += len(piece)
            self.reporter.advance(len(piece))
        self._current["files"] += 1
        self._current["bytes"] += n
        if values.found or shapes.found:
            self.findings.append(Finding(self._current["place"], self._current["where"], path,
                                         list(values.found), list(shapes.found)))


def check_secrets(policy: SecretsPolicy, *, config_path: Path | None = None, scope: StateScope | None = None,
                  open_repo: Callable[[], Repository] | None = None, exports: Iterable[Path] = (),
                  reporter: Reporter | None = None, environ: dict[str, str] | None = None,
                  limits: Limits | None = None, sm_client: Any = None) -> SecretsCheckResult:
    """Run the check (see the module docstring). ``open_repo`` opens the repository (None: no
    repository configured, the newest snapshot is listed in ``not_scanned``); ``environ``
    replaces ``os.environ`` for ``env:`` sources. Raises only what opening the repository or an
    export archive raises (a wrong key, an unreachable store, a damaged or hostile archive)."""
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    matcher = ValueMatcher()
    statuses: list[SecretStatus] = []
    reporter.stage("reading the secrets")
    for name, source in policy.sources.items():
        got = read_secret(source, environ=environ, client=sm_client if source.scheme == AWS_SM else None)
        status = SecretStatus(name, str(source), OK, facts=got.facts)
        if got.value is None:
            status.state = got.state or MISSING
            status.problem = got.problem
        else:
            status.length = len(got.value)
            problem = weakness(got.value, policy.min_length)
            if problem:  # a placeholder is not looked for elsewhere: it would be found in every sample config
                status.state, status.problem = WEAK, f"the value is {problem}"
            elif not matcher.add(name, got.value):
                status.warnings.append(f"not looked for elsewhere (shorter than {MIN_MATCH_LENGTH} bytes)")
        del got
        mode = status.facts.get("mode")
        if isinstance(mode, str) and int(mode, 8) & 0o077:
            status.warnings.append(f"the file is readable by others than its owner (mode {mode}); chmod 600 it")
        if source.scheme == AWS_SM and status.facts and not status.facts.get("previous") and status.state == OK:
            status.warnings.append("no AWSPREVIOUS version: nothing to roll back to if the current value is "
                                   "overwritten by mistake")
        statuses.append(status)
    places = _Places(matcher, reporter)
    not_scanned: list[dict[str, str]] = []
    warnings: list[str] = []
    if config_path is not None and config_path.is_file():
        places.begin(CONFIG, str(config_path))
        places.file(config_path.name, _file_pieces(config_path))
    if scope is not None:
        if scope.state_dir.is_dir():
            _scan_state_dir(places, scope, warnings)
        else:
            not_scanned.append({"place": STATE_DIR, "reason": f"{scope.state_dir} does not exist"})
    if open_repo is None:
        not_scanned.append({"place": SNAPSHOT, "reason": "no backup repository is configured (SWARM_BACKUP_REPO)"})
    else:
        _scan_newest_snapshot(places, open_repo(), not_scanned, warnings)
    for archive in exports:
        _scan_export(places, Path(archive), limits or Limits())
    return SecretsCheckResult(statuses, places.findings, places.scanned, not_scanned, list(policy.not_used),
                              time.monotonic() - t0, warnings)


def _file_pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")


def _scan_state_dir(places: _Places, scope: StateScope, warnings: list[str]) -> None:
    """Every regular file the next ``backup state`` would read; a file that vanishes or turns
    into something else while walked is passed over; a file or directory that cannot be read is
    named in ``warnings`` (``backup state`` cannot read it either)."""
    places.begin(STATE_DIR, str(scope.state_dir))
    for item in walk(scope.state_dir, scope.exclude):
        if item.kind == walk_kinds.UNREADABLE:
            warnings.append(f"state directory: {item.path or '/'} not scanned: {item.reason}")
        if item.kind != walk_kinds.FILE:
            continue
        try:
            with FileRead(scope.state_dir / item.path) as f:
                places.file(item.path, f.pieces())
        except (FileNotFoundError, NotRegular):
            continue
        except OSError as exc:
            warnings.append(f"state directory: {item.path} not scanned: {exc.strerror or exc}")


def _scan_newest_snapshot(places: _Places, repo: Repository, not_scanned: list[dict[str, str]],
                          warnings: list[str]) -> None:
    snapshots = state_snapshots(repo, warnings)
    if not snapshots:
        not_scanned.append({"place": SNAPSHOT, "reason": "the repository holds no state snapshot yet"})
        return
    newest = snapshots[-1]
    places.begin(SNAPSHOT, newest.id)
    reader = TreeReader(repo, newest)
    for entry in reader.walk():
        if entry.type == FILE:
            # the tree store's own block reader: each block decrypted and proven to be its id
            places.file(entry.path, reader.read_file(entry))


def _scan_export(places: _Places, archive: Path, limits: Limits) -> None:
    places.begin(EXPORT, str(archive))

    def inspect(manifest: RunManifest, member: Member, stream: IO[bytes]) -> SwarmError | None:
        places.file(member.name, iter(lambda: stream.read(tario.CHUNK), b""))
        return None

    tario.scan(archive, limits, inspect=inspect)
