"""Secrets: the one scanner, and the pure rules of ``swarm admin secrets check`` (no I/O).

Everything that looks for secrets in bytes lives here, so a state snapshot
(``services/state``), an ``admin export`` (``services/transfer``) and ``admin secrets check``
(``services/secrets``) recognise exactly the same things:

* ``secret_name_reason(name, is_dir)``: secrets by name (``SECRET_NAMES``: ``*.key``,
  ``*.pem``, ``.env``, ``secrets/``, ``credentials*``).
* ``SecretScanner``: a content scan for high-confidence secret shapes (``SECRET_SHAPES``: PEM
  private keys, AWS access key ids and ``aws_secret_access_key = <40 characters>`` lines,
  JWT-looking tokens, ``sk-...`` API keys). It reports the *kinds* found, never the values; it
  is fed a file in any pieces and finds a shape that straddles two of them.
  ``redact_shapes(text)`` replaces every shape in a string with ``[secret removed: <kind>]``.
* ``ValueMatcher`` / ``ValueScan``: find the *values* of named secrets in bytes without keeping
  them: each value is remembered only as its length, the set of its non-alphanumeric bytes and
  ``HMAC-SHA256(key, value)`` under a random key made for this run (never stored). A scan
  looks at every run of bytes that could hold a value of that length and alphabet, and
  compares the keyed hashes of its windows: it finds every occurrence, including one that
  straddles two pieces.
* ``weakness(value, min_length)``: why a secret's value is not a real secret (empty, a
  placeholder such as ``changeme``, ``xxx``, ``TODO``, ``<...>``, ``${...}``, one repeated
  character, or shorter than ``min_length``), or None.
* ``parse_source(text)``: where a secret is read from: ``env:NAME``, ``file:/path`` or
  ``aws-secretsmanager:<secret id or ARN>?region=R[&endpoint=URL]``; ``SourceProblem`` says what
  is wrong with a malformed one (the config layer names the key).
"""
from __future__ import annotations

import fnmatch
import hmac
import re
import secrets as _random
from dataclasses import dataclass, field
from urllib.parse import unquote

from swarm.model.aws import region_and_endpoint

# ---- secrets by name --------------------------------------------------------------------------------
# (pattern, applies to directories, applies to files)
SECRET_NAMES: tuple[tuple[str, bool, bool], ...] = (
    ("*.key", False, True),
    ("*.pem", False, True),
    (".env", False, True),
    ("secrets", True, False),
    ("credentials*", True, True),
)


def secret_name_reason(name: str, is_dir: bool) -> str | None:
    """``secret by name (<pattern>)`` if ``name`` (one path component) is a secret by name, else None."""
    for pattern, dirs, files in SECRET_NAMES:
        if (dirs if is_dir else files) and fnmatch.fnmatchcase(name, pattern):
            return f"secret by name ({pattern}{'/' if is_dir else ''})"
    return None


def secret_path_reason(path: str) -> str | None:
    """Like ``secret_name_reason`` for a ``/``-separated relative file path: the file's own name,
    or a directory on the way to it (``secrets/``, ``credentials*``)."""
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        reason = secret_name_reason(part, i < len(parts) - 1)
        if reason:
            return reason
    return None


# ---- secret shapes ---------------------------------------------------------------------------------
SECRET_SHAPES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    # the literal first, then a lookbehind: the regex engine jumps to candidates instead of trying
    # every position (about 8x faster; the same matches)
    ("AWS access key id", re.compile(rb"A(?<![A-Z0-9]A)(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}"
                                     rb"(?![A-Z0-9])")),
    ("AWS secret access key", re.compile(rb"(?i:aws_?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
                                         rb"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")),
    ("JWT", re.compile(rb"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")),
    ("API key (sk-...)", re.compile(rb"sk-(?<![A-Za-z0-9_-]sk-)(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])"
                                    rb"[A-Za-z0-9_-]{20,}")),
)
OVERLAP = 4096  # bytes of the previous piece kept, so a shape across two pieces is found (longest shape < this)


def secret_kinds(data: bytes) -> list[str]:
    """The kinds of secret shape found in ``data`` (in ``SECRET_SHAPES`` order), never the values."""
    return [kind for kind, rx in SECRET_SHAPES if rx.search(data)]


def redact_shapes(text: str) -> tuple[str, list[str]]:
    """``text`` with every secret shape replaced by ``[secret removed: <kind>]``, and the kinds
    replaced (in ``SECRET_SHAPES`` order). Text that is not valid UTF-8 round-trips through
    ``surrogateescape``."""
    data = text.encode("utf-8", "surrogateescape")
    kinds: list[str] = []
    for kind, rx in SECRET_SHAPES:
        data, n = rx.subn(f"[secret removed: {kind}]".encode(), data)
        if n:
            kinds.append(kind)
    return data.decode("utf-8", "surrogateescape"), kinds


class SecretScanner:
    """Feed a file's bytes in any pieces; ``found`` lists the kinds of secret seen so far.

    Pure (no I/O): holds the last ``OVERLAP`` bytes so a shape across two pieces is found.
    """

    def __init__(self) -> None:
        self._tail = b""
        self.found: list[str] = []

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        window = self._tail + piece
        for kind in secret_kinds(window):
            if kind not in self.found:
                self.found.append(kind)
        self._tail = window[-OVERLAP:]

    def reason(self) -> str | None:
        return f"secret content ({', '.join(self.found)})" if self.found else None


# ---- values, by keyed hash --------------------------------------------------------------------------
MIN_MATCH_LENGTH = 8  # shorter values are not looked for (they would match by chance)
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class _Group:
    length: int
    run: re.Pattern[bytes]  # runs of at least ``length`` bytes of the values' alphabet
    macs: dict[bytes, tuple[str, ...]]  # keyed hash -> the names of the secrets with that value


class ValueMatcher:
    """The values of named secrets, kept only as keyed hashes (see the module docstring).

    ``add(name, value)`` forgets ``value`` once its hash is taken; ``scan()`` gives a
    ``ValueScan`` for one file. The key is random per matcher (``secrets.token_bytes(32)``),
    so the hashes mean nothing outside this process and this run.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or _random.token_bytes(32)
        self._groups: dict[tuple[int, bytes], dict[bytes, list[str]]] = {}
        self._compiled: list[_Group] | None = None

    def mac(self, data: bytes) -> bytes:
        return hmac.digest(self._key, data, "sha256")

    def add(self, name: str, value: bytes) -> bool:
        """Remember ``value`` as ``name``'s; False (not remembered) when it is shorter than
        ``MIN_MATCH_LENGTH``."""
        if len(value) < MIN_MATCH_LENGTH:
            return False
        extra = bytes(sorted(set(value) - set(_ALNUM)))
        names = self._groups.setdefault((len(value), extra), {}).setdefault(self.mac(value), [])
        if name not in names:
            names.append(name)
        self._compiled = None
        return True

    @property
    def empty(self) -> bool:
        return not self._groups

    def groups(self) -> list[_Group]:
        if self._compiled is None:
            self._compiled = [
                _Group(length, re.compile(b"[" + re.escape(_ALNUM + extra) + b"]{%d,}" % length),
                       {m: tuple(n) for m, n in macs.items()})
                for (length, extra), macs in sorted(self._groups.items())]
        return self._compiled

    def scan(self) -> ValueScan:
        return ValueScan(self)


@dataclass
class ValueScan:
    """One file's scan for the values a ``ValueMatcher`` holds: ``feed`` pieces, then ``found``
    holds the names of the secrets whose value occurs (each once, in the order first seen)."""

    matcher: ValueMatcher
    found: list[str] = field(default_factory=list)
    _tail: bytes = b""

    def feed(self, piece: bytes) -> None:
        if not piece or self.matcher.empty:
            return
        groups = self.matcher.groups()
        window = self._tail + piece
        for g in groups:
            for m in g.run.finditer(window):
                self._windows(g, m.group())
        longest = max(g.length for g in groups)
        self._tail = window[-(longest - 1):] if longest > 1 else b""

    def _windows(self, g: _Group, run: bytes) -> None:
        mac = self.matcher.mac
        for i in range(len(run) - g.length + 1):
            names = g.macs.get(mac(run[i:i + g.length]))
            if names:
                for n in names:
                    if n not in self.found:
                        self.found.append(n)


# ---- placeholders -----------------------------------------------------------------------------------
DEFAULT_MIN_LENGTH = 16
PLACEHOLDERS = frozenset({
    "changeme", "change-me", "change_me", "changeit", "todo", "tbd", "fixme", "placeholder", "secret", "password",
    "passwd", "example", "dummy", "test", "testing", "none", "null", "nil", "undefined", "default", "replaceme",
    "replace-me", "replace_me", "your-secret", "your_secret", "yoursecret", "your-api-key", "your_api_key",
    "insert-key-here", "xxx", "sample", "demo", "foo", "bar", "foobar", "redacted", "***",
})
_PLACEHOLDER_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("<...>", re.compile(r"<[^<>]*>")),
    ("${...}", re.compile(r"\$\{[^{}]*\}|\$\([^()]*\)|\{\{[^{}]*\}\}")),
    ("xxx...", re.compile(r"(?i)x{3,}")),
    ("TODO", re.compile(r"(?i)\b(?:todo|fixme|changeme|change[-_ ]me|replace[-_ ]?me|placeholder)\b")),
    ("your-...", re.compile(r"(?i)^(?:your|my|insert|put|enter)[-_ ]")),
    ("sk-...", re.compile(r"(?i)^sk-(?:x+|\.{3}|\*+)$")),
)


def weakness(value: bytes, min_length: int = DEFAULT_MIN_LENGTH) -> str | None:
    """Why ``value`` is not a usable secret, or None. Never quotes the value: the reason names
    the rule (``empty``, ``a placeholder (<rule>)``, ``one repeated character``, ``N bytes, shorter
    than M``)."""
    if not value.strip():
        return "empty"
    text = value.decode("utf-8", "replace").strip()
    if text.lower() in PLACEHOLDERS:
        return "a placeholder (a well-known placeholder word)"
    for rule, rx in _PLACEHOLDER_SHAPES:
        if rx.search(text):
            return f"a placeholder ({rule})"
    if len(set(text)) == 1:
        return "one repeated character"
    if len(value) < min_length:
        return f"{len(value)} bytes, shorter than {min_length}"
    return None


# ---- where a secret comes from ---------------------------------------------------------------------
ENV, FILE, AWS_SM = "env", "file", "aws-secretsmanager"
SCHEMES = (ENV, FILE, AWS_SM)


class SourceProblem(ValueError):
    """A secret source that cannot be parsed; the message says what is wrong (never a value)."""


@dataclass(frozen=True)
class SecretSource:
    """``env:NAME``, ``file:/path`` or ``aws-secretsmanager:<id>?region=R[&endpoint=URL]``, parsed."""

    scheme: str
    ref: str  # the variable, the path, or the secret id / ARN
    region: str | None = None
    endpoint: str | None = None

    def __str__(self) -> str:
        if self.scheme != AWS_SM:
            return f"{self.scheme}:{self.ref}"
        query = "&".join(f"{k}={v}" for k, v in (("region", self.region), ("endpoint", self.endpoint)) if v)
        return f"{self.scheme}:{self.ref}" + (f"?{query}" if query else "")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_source(text: str) -> SecretSource:
    """Parse a secret source; ``SourceProblem`` for an unknown scheme or a malformed reference.

    ``file:`` takes an absolute path (``~`` is expanded by the reader); ``aws-secretsmanager:``
    needs ``region`` unless the id is an ARN (which names its region); ``endpoint`` points at a
    Secrets Manager-compatible server (a VPC endpoint, a test server)."""
    scheme, colon, rest = text.partition(":")
    if not colon:
        raise SourceProblem(f"{text!r} has no scheme (write env:NAME, file:/path or "
                            "aws-secretsmanager:<secret id>?region=R)")
    if scheme not in SCHEMES:
        raise SourceProblem(f"unknown source scheme {scheme!r} (known: {', '.join(SCHEMES)})")
    if scheme == ENV:
        if not _ENV_NAME.fullmatch(rest):
            raise SourceProblem(f"env:{rest} is not an environment variable name")
        return SecretSource(ENV, rest)
    if scheme == FILE:
        path = rest[2:] if rest.startswith("//") else rest  # file:///path is accepted too
        if not (path.startswith("/") or path.startswith("~")):
            raise SourceProblem(f"file:{rest} is not an absolute path (write file:/path/to/secret)")
        return SecretSource(FILE, path)
    ref, _, query = rest.partition("?")
    ref = unquote(ref)
    if not ref or any(c.isspace() for c in ref):
        raise SourceProblem("aws-secretsmanager: names no secret (write aws-secretsmanager:<secret id>?region=R)")
    try:
        region, endpoint = region_and_endpoint(query, ref, what="aws-secretsmanager:", subject="aws-secretsmanager:",
                                               arn_of="secret")
    except ValueError as exc:
        raise SourceProblem(str(exc)) from None
    if endpoint is not None and not re.fullmatch(r"https?://[^\s/?#]+/?", endpoint):
        raise SourceProblem(f"endpoint {endpoint!r} is not an http(s)://host[:port] URL")
    return SecretSource(AWS_SM, ref, region, endpoint)


# ---- the [secrets] table ---------------------------------------------------------------------------
DEFAULT_SOURCES: dict[str, str] = {
    "jwt": "env:SWARM_JWT_SECRET",
    "oidc_client_secret": "env:SWARM_OIDC_CLIENT_SECRET",
}
DEFAULT_LLM: dict[str, str] = {"default": "env:SWARM_LLM_API_KEY"}
TABLE_KEYS = ("jwt", "oidc_client_secret", "llm", "min_length")


@dataclass(frozen=True)
class SecretsPolicy:
    """The secrets a deployment needs, by name (``jwt``, ``oidc_client_secret``, ``llm.<name>``),
    each with its source, and the shortest value accepted."""

    sources: dict[str, SecretSource]
    min_length: int = DEFAULT_MIN_LENGTH
    not_used: tuple[str, ...] = ()  # names set to "" in the table: not checked

    def to_dict(self) -> dict[str, object]:
        return {"sources": {n: str(s) for n, s in self.sources.items()}, "min_length": self.min_length,
                "not_used": list(self.not_used)}


class TableProblem(ValueError):
    """A malformed ``[secrets]`` table: ``key`` is the offending key (``llm.openai``), ``problem`` what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def policy_from_toml(table: object) -> SecretsPolicy:
    """The ``[secrets]`` table (None: the defaults), validated; ``TableProblem`` naming the key.

    Keys: ``jwt``, ``oidc_client_secret`` (each a source, ``""`` for a secret this deployment
    does not use), ``llm`` (a table: name -> source, one per LLM API key; replaces the default
    ``default = "env:SWARM_LLM_API_KEY"``) and ``min_length`` (an integer, at least 8)."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise TableProblem("secrets", "must be a table ([secrets])")
    unknown = sorted(set(table) - set(TABLE_KEYS))
    if unknown:
        raise TableProblem(unknown[0], f"unknown key (the [secrets] table takes {', '.join(TABLE_KEYS)})")
    raw: dict[str, object] = {k: table.get(k, v) for k, v in DEFAULT_SOURCES.items()}
    llm = table.get("llm", DEFAULT_LLM)
    if not isinstance(llm, dict):
        raise TableProblem("llm", "must be a table of name = source ([secrets.llm])")
    for name, value in llm.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)):
            raise TableProblem(f"llm.{name}", "a name is letters, digits, - and _")
        raw[f"llm.{name}"] = value
    min_length = table.get("min_length", DEFAULT_MIN_LENGTH)
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < MIN_MATCH_LENGTH:
        raise TableProblem("min_length", f"must be an integer of at least {MIN_MATCH_LENGTH}")
    sources: dict[str, SecretSource] = {}
    not_used: list[str] = []
    for name, value in raw.items():
        if not isinstance(value, str):
            raise TableProblem(name, "must be a string (env:NAME, file:/path or aws-secretsmanager:<id>?region=R)")
        if value == "":
            not_used.append(name)
            continue
        try:
            sources[name] = parse_source(value)
        except SourceProblem as exc:
            raise TableProblem(name, str(exc)) from None
    return SecretsPolicy(sources, min_length, tuple(not_used))
