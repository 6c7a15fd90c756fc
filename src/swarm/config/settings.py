"""Where swarm's stores and the backup repository are, and how to reach them.

Lookup order for every value, first found wins:

1. explicit overrides (command-line flags), passed to ``load_settings``;
2. environment variables (names in ``ENV``; the seed's ``SWARM_DB_URL`` among them);
3. the TOML file: ``--config``, else ``$SWARM_CONFIG``, else ``$SWARM_HOME/swarm.toml``
   (``swarm dev up`` writes that one, so every later command needs no flags);
4. defaults (``SWARM_HOME`` = ``~/.swarm``, state dir = ``$SWARM_HOME``).

Every URL-valued setting (``URL_SETTINGS``) is parsed when the settings are loaded, by
``swarm.config.urls``: a malformed one is a ConfigError (exit 3) naming the setting as it
was given (``--db-url``, ``SWARM_DB_URL``, ``[database] url``), where it came from, the
problem and the value with its password redacted, whichever command runs. An invalid
configuration is refused as a whole, like an unreadable TOML file.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from swarm.config import urls
from swarm.errors import ConfigError
from swarm.model.retention import DEFAULT_POLICY, Policy, PolicyError, policy_from_toml
from swarm.model.schedule import Job, parse_jobs
from swarm.model.secrets import SecretsPolicy, TableProblem
from swarm.model.secrets import policy_from_toml as secrets_from_toml

# setting name -> (environment variable, TOML section, TOML key)
ENV: dict[str, tuple[str, str, str]] = {
    "db_url": ("SWARM_DB_URL", "database", "url"),
    "repo": ("SWARM_BACKUP_REPO", "repository", "url"),
    "key_url": ("SWARM_KEY_URL", "repository", "key"),
    "repo_s3_endpoint": ("SWARM_REPO_S3_ENDPOINT", "repository", "s3_endpoint"),
    "repo_s3_access_key": ("SWARM_REPO_S3_ACCESS_KEY", "repository", "s3_access_key"),
    "repo_s3_secret_key": ("SWARM_REPO_S3_SECRET_KEY", "repository", "s3_secret_key"),
    "repo_s3_region": ("SWARM_REPO_S3_REGION", "repository", "s3_region"),
    "state_dir": ("SWARM_STATE_DIR", "state", "dir"),
    "objects_endpoint": ("SWARM_OBJECTS_ENDPOINT", "objects", "endpoint"),
    "objects_bucket": ("SWARM_OBJECTS_BUCKET", "objects", "bucket"),
    "objects_access_key": ("SWARM_OBJECTS_ACCESS_KEY", "objects", "access_key"),
    "objects_secret_key": ("SWARM_OBJECTS_SECRET_KEY", "objects", "secret_key"),
    "objects_region": ("SWARM_OBJECTS_REGION", "objects", "region"),
    "dr_objects_endpoint": ("SWARM_DR_OBJECTS_ENDPOINT", "dr", "endpoint"),
    "dr_objects_bucket": ("SWARM_DR_OBJECTS_BUCKET", "dr", "bucket"),
    "dr_objects_access_key": ("SWARM_DR_OBJECTS_ACCESS_KEY", "dr", "access_key"),
    "dr_objects_secret_key": ("SWARM_DR_OBJECTS_SECRET_KEY", "dr", "secret_key"),
    "dr_objects_region": ("SWARM_DR_OBJECTS_REGION", "dr", "region"),
    "pg_bindir": ("SWARM_PG_BINDIR", "postgres", "bindir"),
    "work_dir": ("SWARM_WORK_DIR", "backup", "work_dir"),
    "wal_wait_timeout": ("SWARM_WAL_WAIT_TIMEOUT", "backup", "wal_wait_timeout"),
}

# setting name -> kind of URL (swarm.config.urls.URL_KINDS), checked by load_settings
URL_SETTINGS: dict[str, str] = {
    "db_url": "postgres",
    "repo": "repository",
    "key_url": "key",
    "repo_s3_endpoint": "endpoint",
    "objects_endpoint": "endpoint",
    "dr_objects_endpoint": "endpoint",
}


@dataclass
class Settings:
    home: Path
    config_path: Path
    config_found: bool
    db_url: str | None = None
    repo: str | None = None
    key_url: str | None = None
    repo_s3_endpoint: str | None = None
    repo_s3_access_key: str | None = None
    repo_s3_secret_key: str | None = None
    repo_s3_region: str | None = None
    state_dir: str | None = None
    objects_endpoint: str | None = None
    objects_bucket: str | None = None
    objects_access_key: str | None = None
    objects_secret_key: str | None = None
    objects_region: str | None = None
    dr_objects_endpoint: str | None = None
    dr_objects_bucket: str | None = None
    dr_objects_access_key: str | None = None
    dr_objects_secret_key: str | None = None
    dr_objects_region: str | None = None
    pg_bindir: str | None = None
    work_dir: str | None = None
    wal_wait_timeout: str | None = None
    retention: Policy = DEFAULT_POLICY  # [retention] tables (swarm.model.retention); the seed's table by default
    sources: dict[str, str] = field(default_factory=dict)  # setting -> "flag" | "env:NAME" | "file" | "default"
    # [[repository.copies]]: off-site copies of the repository, by name (docs/copies.md)
    copies: dict[str, RepoPlace] = field(default_factory=dict)
    # the primary repository as configured, before ``--repo NAME`` (or SWARM_BACKUP_REPO = a copy's URL) chose a copy
    primary: RepoPlace | None = None
    copy: str | None = None  # the name of the copy ``repo`` / ``key_url`` / ``repo_s3_*`` now point at
    # [repository.storage_class]: S3 storage class per backup kind (and wal) for its data; none = server default
    storage_class: dict[str, str] = field(default_factory=dict)
    # [schedule.<job>] tables, validated (swarm.model.schedule); the seed's default table when absent
    schedule: dict[str, Job] = field(default_factory=dict)
    schedule_source: str = "default"  # "file" when swarm.toml has [schedule] tables
    # [secrets]: the secrets the deployment needs and where each is kept (swarm.model.secrets); never values
    secrets: SecretsPolicy | None = None

    def require(self, name: str, what: str) -> str:
        value = getattr(self, name)
        if not value:
            env, section, key = ENV[name]
            raise ConfigError(f"{what} is not configured",
                              hint=f"Set {env}, or [{section}] {key} in {self.config_path}, or run "
                                   "`swarm dev up` for the embedded stack.")
        return str(value)

    def seconds(self, name: str, default: float) -> float:
        """A duration setting in seconds (``90``, ``90s``, ``2m``, ``1h``); ConfigError naming it if malformed."""
        value = getattr(self, name)
        if value in (None, ""):
            return default
        text = str(value).strip().lower()
        scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
        try:
            n = float(text[:-1] if scale else text) * (scale or 1)
        except ValueError:
            n = -1
        if not n > 0:
            env, section, key = ENV[name]
            raise ConfigError(f"{name.replace('_', '-')} {value!r} (from {self.sources.get(name, 'default')}) is "
                              "not a duration", hint=f"Give seconds, e.g. 90, 90s, 2m or 1h ({env} or [{section}] "
                                                    f"{key}).")
        return n

    @property
    def key_path_default(self) -> Path:
        return self.home / "keys" / "repo.key"

    def public(self) -> dict[str, Any]:
        """Settings without secrets, for `status` output."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("sources", "schedule", "secrets"):
                continue
            if f.name in ("copies", "primary"):
                v = getattr(self, f.name)
                out[f.name] = ({k: c.public() for k, c in v.items()} if isinstance(v, dict)
                               else v.public() if v is not None else None)
                continue
            if f.name == "retention":
                out[f.name] = self.retention.to_dict()
                continue
            v = getattr(self, f.name)
            if "secret" in f.name and v:
                v = "***"
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out


def swarm_home() -> Path:
    return Path(os.environ.get("SWARM_HOME") or Path.home() / ".swarm").expanduser()


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    home = swarm_home()
    explicit = config or os.environ.get("SWARM_CONFIG")
    path = Path(explicit).expanduser() if explicit else home / "swarm.toml"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}", hint="Fix or remove the file.") from exc
    elif explicit:
        raise ConfigError(f"config file {path} does not exist")
    s = Settings(home=home, config_path=path, config_found=path.exists())
    try:
        s.retention = policy_from_toml(data.get("retention"))
    except PolicyError as exc:
        raise ConfigError(f"{exc.key} in {path}: {exc.problem}",
                          hint="Fix the [retention] tables (docs/operations.md, \"Retention and prune\"). Nothing was "
                               "deleted.", details={"key": exc.key}) from exc
    for name, (env, section, key) in ENV.items():
        if overrides.get(name) not in (None, ""):
            setattr(s, name, str(overrides[name]))
            s.sources[name] = "flag"
        elif os.environ.get(env):
            setattr(s, name, os.environ[env])
            s.sources[name] = f"env:{env}"
        elif isinstance(data.get(section), dict) and data[section].get(key) not in (None, ""):
            setattr(s, name, str(data[section][key]))
            s.sources[name] = "file"
    s.storage_class = _storage_classes(data, path)
    # ---- [schedule] ----
    # `[schedule.<job>]` tables; an invalid one is a ConfigError (exit 3) naming the table and key.
    if "schedule" in data:
        s.schedule = parse_jobs(data["schedule"], where=str(path))
        s.schedule_source = "file"
    else:
        s.schedule = parse_jobs(None)
    # ---- end [schedule] ----
    # ---- [secrets] ----
    # where each secret swarm needs is kept (never a value); an unknown key or source scheme is a
    # ConfigError (exit 3) naming the key.
    try:
        s.secrets = secrets_from_toml(data.get("secrets"))
    except TableProblem as exc:
        raise ConfigError(f"[secrets] {exc.key} in {path}: {exc.problem}",
                          hint="Fix the [secrets] table (docs/runbooks.md, \"Checking secrets\").",
                          details={"key": exc.key}) from exc
    # ---- end [secrets] ----
    if not s.state_dir:
        s.state_dir = str(home)
        s.sources["state_dir"] = "default"
    if not s.key_url:
        s.key_url = str(s.key_path_default)
        s.sources["key_url"] = "default"
    _load_copies(s, data, path, overrides.get("copy"))
    for name, kind in URL_SETTINGS.items():
        value = getattr(s, name)
        if value is not None:
            setting, source = _named(name, s.sources.get(name, "default"), path)
            urls.check(kind, value, setting=setting, source=source)
    return s


def _named(name: str, source: str, path: Path) -> tuple[str, str]:
    """How the operator wrote the setting ``name`` that came from ``source``, and where."""
    env, section, key = ENV[name]
    if source.startswith("copy:"):
        return f"[[repository.copies]] {source[5:]} {'url' if name == 'repo' else key}", f"file {path}"
    if source == "flag":
        return "--" + name.replace("_", "-"), "flag"
    if source == "file":
        return f"[{section}] {key}", f"file {path}"
    if source.startswith("env:"):
        return env, "env"
    return env, "default"


# ---- [repository.storage_class] --------------------------------------------------------------------
STORAGE_CLASS_KINDS = ("pg-logical", "pg-physical", "objects", "state", "set", "wal")
S3_STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER",
                      "DEEP_ARCHIVE", "REDUCED_REDUNDANCY", "EXPRESS_ONEZONE", "OUTPOSTS", "SNOW")


def _storage_classes(data: dict[str, Any], path: Path) -> dict[str, str]:
    """``[repository.storage_class]``: kind → S3 storage class (``pg-logical = "STANDARD_IA"``). An
    unknown kind or class is a ConfigError (exit 3) naming the key."""
    section = data.get("repository")
    raw = section.get("storage_class") if isinstance(section, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"repository.storage_class in {path} must be a table",
                          hint='Write [repository.storage_class] with lines like pg-logical = "STANDARD_IA".',
                          details={"key": "repository.storage_class"})
    out = {}
    for kind, cls in raw.items():
        key = f"repository.storage_class.{kind}"
        if kind not in STORAGE_CLASS_KINDS:
            raise ConfigError(f"{key} in {path}: unknown kind {kind!r}",
                              hint=f"Kinds: {', '.join(STORAGE_CLASS_KINDS)}.", details={"key": key})
        if not isinstance(cls, str) or cls.upper() not in S3_STORAGE_CLASSES:
            raise ConfigError(f"{key} in {path}: unknown S3 storage class {cls!r}",
                              hint=f"Classes: {', '.join(S3_STORAGE_CLASSES)}.", details={"key": key})
        out[str(kind)] = cls.upper()
    return out


# ---- [[repository.copies]] -------------------------------------------------------------------------

_COPY_KEYS = ("name", "url", "key", "s3_endpoint", "s3_access_key", "s3_secret_key", "s3_region", "retention")
_COPY_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class RepoPlace:
    """Where one repository lives and how to reach it: the primary (``name`` ``""``) or a copy.

    ``key_url`` is the copy's own key provider (today a key file, ``file://``; another provider
    plugs in behind the same URL); None means the primary's key. ``s3_*`` None means the primary's.
    ``retention`` is the copy's own policy (its ``retention`` sub-table over the top-level
    ``[retention]``); None means the top-level policy."""

    name: str
    url: str
    key_url: str | None = None
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None
    retention: Policy | None = None

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "key": self.key_url, "s3_endpoint": self.s3_endpoint,
                "s3_access_key": self.s3_access_key, "s3_secret_key": "***" if self.s3_secret_key else None,
                "s3_region": self.s3_region,
                "retention": self.retention.to_dict() if self.retention is not None else None}


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _copy_retention(name: str, table: Any, top: Any, path: Path) -> Policy | None:
    """A copy's own retention policy: its ``retention`` table's keys over the top-level ``[retention]``
    (None when the copy has no such table: it follows the top-level policy)."""
    if table is None:
        return None
    where = f"[[repository.copies]] {name} retention in {path}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} is not a table",
                          hint="Write it as [repository.copies.retention.<kind>] tables under the copy "
                               "(docs/copies.md).")
    try:
        return policy_from_toml({**(top if isinstance(top, dict) else {}), **table})
    except PolicyError as exc:
        raise ConfigError(f"[[repository.copies]] {name} {exc.key} in {path}: {exc.problem}",
                          hint="Fix the copy's retention tables (docs/copies.md, \"A copy's own retention\"). "
                               "Nothing was deleted.", details={"key": exc.key, "copy": name}) from exc


def _load_copies(s: Settings, data: dict[str, Any], path: Path, chosen: str | None) -> None:
    """Read ``[[repository.copies]]`` into ``s.copies`` and, when a copy is chosen (``--repo NAME``)
    or SWARM_BACKUP_REPO / ``--repo-url`` names a copy's URL, point ``repo``, ``key_url`` and
    ``repo_s3_*`` at it (its own key and endpoint where it has them, the primary's otherwise), and
    ``retention`` at the copy's own policy when it has one. With copies and no ``[schedule]``
    tables, the default schedule gains the ``repo copy`` job (``swarm.model.schedule.COPY_SCHEDULE``)
    and a daily ``prune-<copy>`` per copy; a job's ``repo`` must name a configured copy.

    A copy's ``retention`` sub-table has the shape of the top-level ``[retention]``; each of its
    keys (a ``<kind>`` table, ``wal``, ``keep_tags``, ``safety_age``) replaces the top-level one,
    the rest is inherited, and the result is parsed by ``policy_from_toml`` (same checks, same
    defaults). ConfigError (exit 3) naming the entry for a malformed table, a duplicate name, an
    unknown copy, a copy whose URL is the primary's, or an invalid retention key (named as
    ``[[repository.copies]] NAME retention.<kind>.<key>``)."""
    section = data.get("repository")
    raw = section.get("copies", []) if isinstance(section, dict) else []
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise ConfigError(f"[[repository.copies]] in {path} must be an array of tables",
                          hint="Write each copy as a [[repository.copies]] table with name and url (docs/copies.md).")
    for i, c in enumerate(raw):
        where = f"[[repository.copies]] #{i + 1} in {path}"
        unknown = sorted(set(c) - set(_COPY_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}",
                              hint=f"A copy takes {', '.join(_COPY_KEYS)} (docs/copies.md).")
        name, url = str(c.get("name") or ""), str(c.get("url") or "")
        if not name or not set(name) <= _COPY_NAME_CHARS or len(name) > 40:
            raise ConfigError(f"{where}: name {name!r} is missing or not lower-case letters, digits, - and _",
                              hint="Name each copy, e.g. name = \"offsite\".")
        if name in s.copies:
            raise ConfigError(f"{where}: a copy named {name!r} is already configured",
                              hint="Give every copy its own name.")
        if not url:
            raise ConfigError(f"{where}: copy {name!r} has no url", hint="Set url = \"s3://bucket/prefix\" or "
                                                                         "\"file:///path\".")
        urls.check("repository", url, setting=f"[[repository.copies]] {name} url", source=f"file {path}")
        key = str(c["key"]) if c.get("key") not in (None, "") else None
        if key is not None:
            urls.check("key", key, setting=f"[[repository.copies]] {name} key", source=f"file {path}")
        endpoint = str(c["s3_endpoint"]) if c.get("s3_endpoint") not in (None, "") else None
        if endpoint is not None:
            urls.check("endpoint", endpoint, setting=f"[[repository.copies]] {name} s3_endpoint",
                       source=f"file {path}")
        s.copies[name] = RepoPlace(name, url, key, endpoint,
                                   *(str(c[k]) if c.get(k) not in (None, "") else None
                                     for k in ("s3_access_key", "s3_secret_key", "s3_region")),
                                   retention=_copy_retention(name, c.get("retention"), data.get("retention"),
                                                             path))
        if s.repo and _same_url(url, s.repo) and s.sources.get("repo") == "file":
            raise ConfigError(f"{where}: copy {name!r} has the primary repository's url {url}",
                              hint="A copy lives in another place (another bucket, endpoint or directory).")
    if s.copies and s.schedule_source == "default":  # the default table copies to and prunes them (docs/copies.md)
        s.schedule = parse_jobs(None, copies=sorted(s.copies))
    for job in s.schedule.values():
        if job.repo is not None and job.repo not in s.copies:
            known = ", ".join(sorted(s.copies)) or "none"
            raise ConfigError(f"[schedule.{job.name}] repo in {path}: no copy named {job.repo!r} (copies: {known})",
                              hint="Name a [[repository.copies]] table, or drop repo to run the job on the primary.")
    if s.repo:
        s.primary = RepoPlace("", s.repo, s.key_url, s.repo_s3_endpoint, s.repo_s3_access_key,
                              s.repo_s3_secret_key, s.repo_s3_region)
    if chosen:
        if chosen not in s.copies:
            known = ", ".join(sorted(s.copies)) or "none"
            raise ConfigError(f"--repo {chosen}: no copy of that name is configured (copies: {known})",
                              hint=f"Add a [[repository.copies]] table named {chosen} to {path}, or give the name "
                                   "of a configured copy.")
        s.copy = chosen
        explicit: frozenset[str] = frozenset()
    else:
        match = [n for n, c in s.copies.items() if s.repo and _same_url(c.url, s.repo)]
        if not match:
            return
        s.copy = match[0]
        # SWARM_BACKUP_REPO (or a flag) points at the copy: a key or endpoint given the same way wins
        explicit = frozenset(n for n, src in s.sources.items() if src == "flag" or src.startswith("env:"))
    place = s.copies[s.copy]
    s.repo = place.url
    s.sources["repo"] = f"copy:{place.name}"
    if place.retention is not None:  # `swarm --repo NAME admin prune` / `backups list` use the copy's policy
        s.retention = place.retention
    for name, value in (("key_url", place.key_url), ("repo_s3_endpoint", place.s3_endpoint),
                        ("repo_s3_access_key", place.s3_access_key), ("repo_s3_secret_key", place.s3_secret_key),
                        ("repo_s3_region", place.s3_region)):
        if value is not None and name not in explicit:
            setattr(s, name, value)
            s.sources[name] = f"copy:{place.name}"
