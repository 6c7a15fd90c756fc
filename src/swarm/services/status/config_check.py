"""``swarm admin check config``: prove, end to end and now, that the configuration works.

pgBackRest's ``check``: each step does the real thing, in order, and says what failed and what to do:

1. ``repository``: the repository opens with the configured key (a wrong key is a failure here,
   not at the first backup);
2. ``archive-command``: the server's ``archive_mode`` is on and its ``archive_command`` is swarm's
   (``... admin wal push %p``) with a config naming this repository;
3. ``wal-switch``: a forced WAL switch (one commit, then ``pg_switch_wal()``) produces a segment
   that arrives in the repository within ``wal_timeout`` seconds;
4. ``bucket-policy``: the artefact bucket matches its protection policy;
5. ``dr-bucket``: the DR bucket is reachable with its credentials.

A step whose settings are absent is ``skipped`` (the deployment does not use it); a step that
depends on a failed one is skipped too. The check writes one small commit and one WAL switch on
the server, nothing else; a kill -9 leaves at most that commit and its segment.
"""
from __future__ import annotations

import shlex
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import SwarmError
from swarm.repo import Repository

OK, FAILED, SKIPPED, WARNING = "ok", "failed", "skipped", "warning"


@dataclass
class Step:
    name: str
    status: str
    message: str
    hint: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message, "hint": self.hint,
                "facts": self.facts}


@dataclass
class ConfigCheck:
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status != FAILED for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [s.to_dict() for s in self.steps]}


def ours(archive_command: str, repo_url: str) -> tuple[bool, str]:
    """Whether ``archive_command`` is swarm's ``<launcher> --config C admin wal push %p`` and C (when
    readable) names ``repo_url``; with the reason when it is not."""
    try:
        words = shlex.split(archive_command)
    except ValueError:
        return False, "it cannot be parsed as a command line"
    if words[-4:] != ["admin", "wal", "push", "%p"]:
        return False, "it does not run `swarm admin wal push %p`"
    if "--config" in words:
        cfg = Path(words[words.index("--config") + 1])
        try:
            doc = tomllib.loads(cfg.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return True, ""  # the server user's config may be unreadable to us: the WAL switch proves it
        url = str((doc.get("repository") or {}).get("url") or "")
        if url and _same_place(url) != _same_place(repo_url):
            return False, f"its config {cfg} archives into {url}, not this repository"
    return True, ""


def _same_place(url: str) -> str:
    """A repository URL compared by where it leads: a file:// path with its symlinks resolved."""
    import os
    from urllib.parse import unquote, urlparse

    u = urlparse(url)
    if u.scheme in ("file", ""):
        return "file://" + os.path.realpath(unquote(u.path or url))
    return url.rstrip("/")


def check_config(open_repo: Callable[[], Repository], *, db_url: str | None,
                 bucket_policy: Callable[[], Any] | None, dr_access: Callable[[], None] | None,
                 wal_timeout: float = 60.0, drift_fails: bool = True) -> ConfigCheck:
    """Run the five steps (see the module docstring); never raises for a failed step. With
    ``drift_fails`` False a bucket that drifted from its policy is a ``warning``, not a failure
    (``swarm dev up``: the embedded stack enables versioning only)."""
    res = ConfigCheck()
    repo: Repository | None = None
    try:
        repo = open_repo()
        res.steps.append(Step("repository", OK, f"the repository {repo.url} opens with the configured key",
                              facts={"url": repo.url}))
    except SwarmError as exc:
        res.steps.append(Step("repository", FAILED, f"the repository does not open: {exc.message}", exc.hint,
                              {"error": exc.code}))

    if not db_url:
        res.steps.append(Step("archive-command", SKIPPED, "no database configured (SWARM_DB_URL)"))
        res.steps.append(Step("wal-switch", SKIPPED, "no database configured (SWARM_DB_URL)"))
    elif repo is None:
        res.steps.append(Step("archive-command", SKIPPED, "the repository did not open"))
        res.steps.append(Step("wal-switch", SKIPPED, "the repository did not open"))
    else:
        _archiving(res, repo, db_url, wal_timeout)

    for name, call, what in (("bucket-policy", bucket_policy, "the artefact bucket"),
                             ("dr-bucket", dr_access, "the DR bucket")):
        if call is None:
            res.steps.append(Step(name, SKIPPED, f"{what} is not configured"))
            continue
        try:
            out = call()
        except SwarmError as exc:
            res.steps.append(Step(name, FAILED, f"{what}: {exc.message}", exc.hint, {"error": exc.code}))
            continue
        if name == "bucket-policy" and out is not None and out.drifted:
            drift = [r.to_dict() for r in out.rules if str(r.status) == "drifted"]
            res.steps.append(Step(name, FAILED if drift_fails else WARNING, f"{what} has drifted from its policy",
                                  "Run `swarm admin objects policy apply` (see `objects policy check`).",
                                  {"drift": drift}))
        else:
            res.steps.append(Step(name, OK, f"{what} is reachable" + (" and matches its policy"
                                                                       if name == "bucket-policy" else "")))
    return res


def _archiving(res: ConfigCheck, repo: Repository, db_url: str, wal_timeout: float) -> None:
    from swarm.sources.postgres.conn import connect

    try:
        with connect(db_url) as conn:
            row = conn.execute("SELECT current_setting('archive_mode'), current_setting('archive_command'), "
                               "pg_is_in_recovery()").fetchone()
        assert row is not None
        mode, command, in_recovery = str(row[0]), str(row[1]), bool(row[2])
    except SwarmError as exc:
        res.steps.append(Step("archive-command", FAILED, f"the server cannot be asked: {exc.message}", exc.hint,
                              {"error": exc.code}))
        res.steps.append(Step("wal-switch", SKIPPED, "the server cannot be asked"))
        return
    facts = {"archive_mode": mode, "archive_command": command}
    good, why = ours(command, repo.url)
    if mode == "off":
        res.steps.append(Step("archive-command", FAILED, "archive_mode is off: no WAL reaches the repository",
                              "Set archive_mode = on and archive_command to swarm's `... admin wal push %p` "
                              "(restart the server), or run `swarm admin wal stream`.", facts))
        res.steps.append(Step("wal-switch", SKIPPED, "archiving is off"))
        return
    if not good:
        res.steps.append(Step("archive-command", FAILED, f"archive_command is not swarm's: {why} "
                              f"({command!r})",
                              "Set archive_command to `<launcher> --config <server config> admin wal push %p` as "
                              "`swarm dev up` does (docs/operations.md), then `SELECT pg_reload_conf()`; until "
                              "then point-in-time recovery has no WAL.", facts))
        res.steps.append(Step("wal-switch", SKIPPED, "archive_command is not swarm's"))
        return
    res.steps.append(Step("archive-command", OK, "archive_command is swarm's `wal push` into this repository",
                          facts=facts))
    if in_recovery:
        res.steps.append(Step("wal-switch", SKIPPED, "the server is a standby (no WAL switch there)"))
        return
    started = time.monotonic()
    try:
        with connect(db_url) as conn:
            conn.execute("SELECT txid_current()")  # a commit, so the switch closes a segment with WAL in it
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment = str(row[0])
    except SwarmError as exc:
        res.steps.append(Step("wal-switch", FAILED, f"the WAL switch failed: {exc.message}", exc.hint))
        return
    while time.monotonic() - started < wal_timeout:
        if repo.has_wal(segment):
            took = round(time.monotonic() - started, 2)
            res.steps.append(Step("wal-switch", OK, f"a forced WAL switch arrived in the repository in {took} s "
                                                    f"({segment})", facts={"segment": segment, "seconds": took}))
            return
        time.sleep(0.25)
    res.steps.append(Step("wal-switch", FAILED,
                          f"a forced WAL switch did not arrive in the repository within {wal_timeout:g} s "
                          f"(segment {segment})",
                          "archive_command runs but fails or is slow: `swarm admin status` and the server log "
                          "say why (often the repository is not writable by the server user).",
                          {"segment": segment}))
