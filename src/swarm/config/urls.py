"""The one parser of the URLs swarm is configured with, and the one redactor of their secrets.

Four kinds of value are URLs (``URL_KINDS``):

* ``postgres``: a libpq connection URI, ``postgresql://[user[:password]@][host][:port][,...][/dbname][?k=v&...]``
  (``SWARM_DB_URL``, ``--db-url``, ``--target-db``). Parsed the way libpq parses it (multiple
  hosts, bracketed IPv6, percent-encoding, the query parameters libpq knows and the values
  it accepts for its enumerations), so a malformed URL is a ConfigError naming the problem
  before any connection is tried, never a traceback and never libpq's own message (which
  quotes the whole URI, password included).
* ``repository``: ``file:///absolute/path`` (or a bare absolute path) or ``s3://bucket[/prefix]``
  (``SWARM_BACKUP_REPO``).
* ``key``: ``file:///absolute/path`` or a path, or ``awskms:///<key>?region=R[&endpoint=URL]`` (``SWARM_KEY_URL``).
* ``endpoint``: ``http(s)://host[:port][/path]`` of an S3 server (``SWARM_OBJECTS_ENDPOINT``,
  ``SWARM_DR_OBJECTS_ENDPOINT``, ``SWARM_REPO_S3_ENDPOINT``).

``check_*`` raise ``UrlProblem`` whose text says what is wrong and never contains a secret;
``invalid`` turns one into the ConfigError (exit 3) an operator sees: the setting, where it
was set, the problem, the URL with its password redacted, and an example of a valid value.
``redact`` never raises, whatever it is given.

Pure: no I/O, no SDK (psycopg stays in ``swarm.sources``). May import: swarm.errors.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from swarm.errors import ConfigError, InvalidUrl
from swarm.model.aws import region_and_endpoint


class UrlProblem(ValueError):
    """What is wrong with a URL, in words that contain no secret from it."""


# ---- redaction -----------------------------------------------------------------------------------

# query / conninfo keys whose values are secrets
_SECRET_KEYS = frozenset({"password", "sslpassword", "oauth_client_secret"})
_CONNINFO_SECRET = re.compile(r"(\b(?:password|sslpassword|oauth_client_secret)\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)",
                              re.IGNORECASE)


def redact(url: str) -> str:
    """``url`` with every password replaced by ``***``: the one in the user info
    (``scheme://user:PASSWORD@host``), ``?password=`` / ``?sslpassword=`` in the query string,
    and ``password=...`` in a ``key=value`` connection string. Works on malformed input
    (unbalanced brackets, bad ports, spaces, an unencoded ``/``, ``?`` or ``@`` in the
    password): when unsure where the password ends it hides more, never less."""
    if "://" not in url:
        return _CONNINFO_SECRET.sub(r"\1***", url)
    scheme, _, rest = url.partition("://")
    # the user info ends at the LAST "@": a password holding an unencoded "@", "/" or "?" stays hidden
    userinfo, at, rest = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    if "?" in rest:
        head, _, query = rest.partition("?")
        parts = []
        for item in query.split("&"):
            key, eq, _value = item.partition("=")
            parts.append(f"{key}=***" if eq and unquote(key).strip().lower() in _SECRET_KEYS else item)
        rest = head + "?" + "&".join(parts)
    return f"{scheme}://{userinfo}{at}{rest}"


# ---- checks --------------------------------------------------------------------------------------

def _no_blanks(url: str) -> None:
    if not url.strip():
        raise UrlProblem("it is blank")
    for ch in url:
        if ch.isspace():
            raise UrlProblem("it contains a space (write a space inside a value as %20)")
        if ord(ch) < 32 or ord(ch) == 127:
            raise UrlProblem("it contains a control character")


def _percent_ok(text: str, where: str, *, quote: bool = True) -> None:
    for m in re.finditer(r"%(.{0,2})", text):
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", m.group(1)) or m.group(1) == "00":
            token = f" {m.group(0)!r}" if quote else ""
            raise UrlProblem(f"invalid percent-encoding{token} in the {where} (write % itself as %25)")


def _port_ok(port: str, where: str = "port") -> None:
    if not port.isdigit():
        raise UrlProblem(f"{where} {port!r} is not a number")
    if not 1 <= int(port) <= 65535:
        raise UrlProblem(f"{where} {port} is out of range (1-65535)")


POSTGRES_SCHEMES = ("postgresql", "postgres")

# libpq's connection parameters (PostgreSQL 18); libpq refuses any other key in the query string
_PG_PARAMS = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "require_auth", "channel_binding",
    "connect_timeout", "client_encoding", "options", "application_name", "fallback_application_name",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "replication", "gssencmode", "sslmode", "sslnegotiation", "sslcompression", "sslcert", "sslkey",
    "sslpassword", "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "min_protocol_version", "max_protocol_version",
    "krbsrvname", "gsslib", "gssdelegation", "service", "target_session_attrs", "load_balance_hosts",
    "oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope",
    "ssl",  # JDBC spelling libpq accepts in URIs (only ssl=true)
})
_PG_CHOICES: dict[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "sslnegotiation": ("postgres", "direct"),
    "sslcertmode": ("disable", "allow", "require"),
    "replication": ("true", "on", "yes", "1", "false", "off", "no", "0", "database"),
    "ssl": ("true",),
}
_PG_INTEGERS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                "tcp_user_timeout")


@dataclass(frozen=True)
class PostgresUrl:
    """The parts of a libpq URI swarm looks at (user and password are never kept)."""

    hosts: tuple[str, ...]  # "" = the default (a Unix socket)
    ports: tuple[str, ...]  # "" = the default (5432)
    dbname: str  # "" = libpq's default (the user name)
    params: dict[str, str]


def check_postgres_url(url: str) -> PostgresUrl:
    """Parse ``url`` as libpq parses a connection URI; raise UrlProblem on what libpq would
    refuse (and on ports out of range, which libpq only notices when it connects)."""
    scheme, sep, rest = url.partition("://")
    if not sep and "=" in url:
        raise UrlProblem("it is a key=value connection string; swarm takes the URL form")
    _no_blanks(url)
    if not sep:
        raise UrlProblem("it is not a URL (no postgresql://)")
    if scheme.lower() not in POSTGRES_SCHEMES:
        raise UrlProblem(f"the scheme is {scheme!r}, not postgresql://")
    # the authority ends at the first "/" or "?" (libpq), user info at the first "@" before it
    m = re.match(r"[^/?]*", rest)
    authority = m.group(0) if m else ""
    tail = rest[len(authority):]
    if "@" in authority:
        userinfo, _, authority = authority.partition("@")
        _percent_ok(userinfo, "user name or password", quote=False)
    if "@" in authority or "@" in tail:
        # never quote these parts: they may hold the rest of a password
        raise UrlProblem("an '@', '/' or '?' inside the user name or password is not percent-encoded "
                         "(write @ as %40, / as %2F, ? as %3F)")
    _percent_ok(authority, "host")
    _percent_ok(tail, "database name or query", quote=False)
    hosts: list[str] = []
    ports: list[str] = []
    for spec in authority.split(","):
        if spec.startswith("["):
            end = spec.find("]")
            if end < 0:
                raise UrlProblem("an IPv6 host has no closing ']'")
            host, after = spec[1:end], spec[end + 1:]
            if not host:
                raise UrlProblem("an IPv6 host is empty ('[]')")
            if after and not after.startswith(":"):
                raise UrlProblem(f"unexpected {after!r} after the IPv6 host [{host}]")
            port = after[1:]
        else:
            if "]" in spec or "[" in spec:
                raise UrlProblem(f"host {spec!r} has a stray bracket (IPv6 hosts are written [::1])")
            host, _, port = spec.partition(":")
        if port:
            _port_ok(port)
        hosts.append(unquote(host))
        ports.append(port)
    path, _, query = tail.partition("?")
    dbname = unquote(path[1:]) if path.startswith("/") else ""
    params: dict[str, str] = {}
    if query:
        for item in query.split("&"):
            if not item:
                continue
            key, eq, value = item.partition("=")
            key, value = unquote(key), unquote(value)
            if not eq:
                raise UrlProblem(f"query parameter {key!r} has no value (write {key}=...)")
            if key not in _PG_PARAMS:
                raise UrlProblem(f"unknown connection parameter {key!r}")
            if key in _PG_CHOICES and value not in _PG_CHOICES[key]:
                raise UrlProblem(f"{key}={value!r} is not one of {', '.join(_PG_CHOICES[key])}")
            if key in _PG_INTEGERS and not re.fullmatch(r"-?\d+", value):
                raise UrlProblem(f"{key}={value!r} is not a whole number")
            if key == "port":
                for p in value.split(","):
                    if p:
                        _port_ok(p)
            params[key] = value
    return PostgresUrl(tuple(hosts), tuple(ports), dbname, params)


_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")


@dataclass(frozen=True)
class RepositoryUrl:
    scheme: str  # "file" | "s3"
    path: str = ""  # file: the absolute directory
    bucket: str = ""  # s3
    prefix: str = ""  # s3, without leading or trailing "/"


def check_repository_url(url: str) -> RepositoryUrl:
    """``file:///absolute/path``, a bare absolute path, or ``s3://bucket[/prefix]``."""
    if not url.strip():
        raise UrlProblem("it is blank")
    if url != url.strip():
        raise UrlProblem("it has leading or trailing spaces")
    if url.startswith("/"):
        return RepositoryUrl("file", path=url)
    try:
        p = urlsplit(url)
    except ValueError as exc:
        raise UrlProblem(f"it cannot be parsed ({exc})") from None
    if p.scheme == "file":
        if p.netloc not in ("", "localhost"):
            raise UrlProblem(f"it names a host ({p.netloc!r}); a local path needs three slashes, file:///path")
        if p.query or p.fragment:
            raise UrlProblem("a file URL takes no ?query or #fragment")
        path = unquote(p.path)
        if not path:
            raise UrlProblem("it has no path")
        if not path.startswith("/"):
            raise UrlProblem(f"the path {path!r} is relative")
        return RepositoryUrl("file", path=path)
    if p.scheme == "s3":
        if not p.netloc:
            raise UrlProblem("it has no bucket")
        if "@" in p.netloc or ":" in p.netloc:
            raise UrlProblem("an s3:// URL takes no credentials or port (set SWARM_REPO_S3_* and the endpoint)")
        if not _BUCKET.fullmatch(p.netloc):
            raise UrlProblem(f"{p.netloc!r} is not a valid bucket name (3-63 letters, digits, '.', '-', '_')")
        if p.query or p.fragment:
            raise UrlProblem("an s3:// URL takes no ?query or #fragment")
        _no_blanks(p.path or "/")
        return RepositoryUrl("s3", bucket=p.netloc, prefix=p.path.strip("/"))
    if not p.scheme:
        raise UrlProblem("it is neither a URL nor an absolute path")
    raise UrlProblem(f"the scheme {p.scheme!r} is not supported")


def check_key_url(url: str) -> str:
    """``file:///absolute/path`` or a path (``~`` is expanded later): returns the path;
    ``awskms:///<key>?region=R[&endpoint=URL]`` (``check_kms_url``) and ``pkcs11:...`` (RFC 7512,
    ``check_pkcs11_url``): return the URL."""
    if not url.strip():
        raise UrlProblem("it is blank")
    if url.startswith("pkcs11:"):
        check_pkcs11_url(url)
        return url
    if "://" not in url and not url.startswith("file:"):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", url) and not re.match(r"[A-Za-z]:[\\/]", url):
            raise UrlProblem(f"the scheme {url.split(':', 1)[0]!r} is not supported")
        return url
    try:
        p = urlsplit(url)
    except ValueError as exc:
        raise UrlProblem(f"it cannot be parsed ({exc})") from None
    if p.scheme == "awskms":
        check_kms_url(url)
        return url
    if p.scheme != "file":
        raise UrlProblem(f"the scheme {p.scheme!r} is not supported (file:// and awskms:// are; Vault transit is "
                         "not built)")
    if p.netloc not in ("", "localhost"):
        raise UrlProblem(f"it names a host ({p.netloc!r}); a local path needs three slashes, file:///path")
    path = unquote(p.path)
    if not path.startswith("/") or path == "/":
        raise UrlProblem(f"the path {path!r} is not an absolute file path")
    return path


@dataclass(frozen=True)
class KmsUrl:
    """An ``awskms:///<key id | key ARN | alias/name>?region=R[&endpoint=URL]`` key URL, parsed."""

    key: str
    region: str
    endpoint: str | None = None


def check_kms_url(url: str) -> KmsUrl:
    """Parse an AWS KMS key URL. The key is a key id, a key ARN or ``alias/name``; ``region`` is
    required unless the key is an ARN (which names its region); ``endpoint`` points at a
    KMS-compatible server (a VPC endpoint, a test server)."""
    try:
        p = urlsplit(url)
    except ValueError as exc:
        raise UrlProblem(f"it cannot be parsed ({exc})") from None
    if p.scheme != "awskms":
        raise UrlProblem("it is not an awskms:/// URL")
    if p.netloc:
        raise UrlProblem(f"it names a host ({p.netloc!r}); write awskms:///<key>?region=R (three slashes) and "
                         "give a server with &endpoint=URL")
    if p.fragment:
        raise UrlProblem("an awskms:/// URL takes no #fragment")
    key = unquote(p.path.lstrip("/"))
    if not key or any(c.isspace() for c in key):
        raise UrlProblem("it names no key (write awskms:///<key id, key ARN or alias/name>?region=R)")
    try:
        region, endpoint = region_and_endpoint(p.query, key, what="an awskms:/// URL", subject="it", arn_of="key")
    except ValueError as exc:
        raise UrlProblem(str(exc)) from None
    if endpoint is not None:
        check_endpoint_url(endpoint)
    return KmsUrl(key, region, endpoint)


@dataclass(frozen=True)
class Pkcs11Url:
    """A PKCS#11 key URI (RFC 7512) naming an AES key on a token, parsed."""

    token: str
    object: str
    module_path: str
    pin_source: str | None = None
    pin_value: str | None = None


def check_pkcs11_url(url: str) -> Pkcs11Url:
    """Parse ``pkcs11:token=T;object=L?module-path=/path/lib.so&pin-source=file:/path`` (RFC 7512:
    path attributes separated by ``;``, query attributes by ``&``, values percent-encoded).
    ``token`` and ``object`` (the key's label) and ``module-path`` are required; the PIN comes from
    ``pin-source`` (a file) or ``pin-value``."""
    if not url.startswith("pkcs11:"):
        raise UrlProblem("it is not a pkcs11: URI")
    rest = url[len("pkcs11:"):]
    path, _, query = rest.partition("?")
    attrs: dict[str, str] = {}
    for part, sep in ((path, ";"), (query, "&")):
        for item in part.split(sep) if part else []:
            name, eq, value = item.partition("=")
            if not eq or not value:
                raise UrlProblem(f"attribute {unquote(name)!r} has no value (write {unquote(name)}=...)")
            attrs[unquote(name)] = unquote(value)
    known = {"token", "object", "module-path", "pin-source", "pin-value", "type", "serial", "manufacturer",
             "model", "id", "slot-id", "library-manufacturer", "library-description", "library-version"}
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise UrlProblem(f"unknown attribute(s) {', '.join(unknown)}")
    for need in ("token", "object", "module-path"):
        if need not in attrs:
            raise UrlProblem(f"it names no {need} (write pkcs11:token=T;object=LABEL?module-path=/path/lib.so"
                             "&pin-source=file:/path/pin)")
    if attrs.get("type", "secret-key") != "secret-key":
        raise UrlProblem("the key must be a secret key (type=secret-key)")
    if not attrs["module-path"].startswith("/"):
        raise UrlProblem(f"module-path {attrs['module-path']!r} is not an absolute path")
    pin_source = attrs.get("pin-source")
    if pin_source is not None:
        if pin_source.startswith("file:"):
            pin_source = urlsplit(pin_source).path if pin_source.startswith("file://") else pin_source[5:]
        if not pin_source.startswith("/"):
            raise UrlProblem("pin-source must be file:/absolute/path")
    return Pkcs11Url(attrs["token"], attrs["object"], attrs["module-path"], pin_source, attrs.get("pin-value"))


def check_endpoint_url(url: str) -> str:
    """``http(s)://host[:port][/path]`` of an S3 server."""
    _no_blanks(url)
    if "://" not in url:
        raise UrlProblem("it is not an http:// or https:// URL")
    try:
        p = urlsplit(url)
        port = p.port  # raises on a non-number or out of range
    except ValueError as exc:
        raise UrlProblem(_port_words(str(exc))) from None
    if p.scheme not in ("http", "https"):
        raise UrlProblem("it is not an http:// or https:// URL" if not p.scheme
                         else f"the scheme {p.scheme!r} is not http or https")
    if not p.hostname:
        raise UrlProblem("it has no host")
    if "@" in p.netloc:
        raise UrlProblem("an endpoint takes no user:password (set the access key and secret key settings)")
    if port == 0:
        raise UrlProblem("port 0 is out of range (1-65535)")
    if p.query or p.fragment:
        raise UrlProblem("an endpoint takes no ?query or #fragment")
    return url


def _port_words(text: str) -> str:
    if "out of range" in text:
        return "the port is out of range (1-65535)"
    if "invalid literal" in text or "Port could not be cast" in text:
        return "the port is not a number"
    if "IPv6" in text:
        return "an IPv6 host is not closed with ']'"
    return f"it cannot be parsed ({text})"


# ---- what an operator sees -----------------------------------------------------------------------

@dataclass(frozen=True)
class UrlKind:
    what: str
    example: str


URL_KINDS: dict[str, UrlKind] = {
    "postgres": UrlKind("PostgreSQL URL",
                        "postgresql://USER:PASSWORD@HOST:5432/DBNAME?sslmode=require "
                        "(percent-encode special characters in the password, e.g. @ as %40)"),
    "repository": UrlKind("repository URL", "file:///var/backups/swarm or s3://my-bucket/swarm"),
    "key": UrlKind("key URL", "file:///etc/swarm/repo.key, /etc/swarm/repo.key or "
                              "awskms:///alias/swarm?region=us-east-1"),
    "endpoint": UrlKind("S3 endpoint URL", "https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:8333"),
}
_CHECKS = {"postgres": check_postgres_url, "repository": check_repository_url, "key": check_key_url,
           "endpoint": check_endpoint_url}


def invalid(kind: str, url: str, problem: UrlProblem | str, *, setting: str, source: str) -> ConfigError:
    """The ConfigError for a malformed URL. ``setting`` names it as the operator wrote it
    (``SWARM_DB_URL``, ``--target-db``, ``[database] url``); ``source`` says where
    (``flag``, ``env``, ``file <path>``, ``default``)."""
    k = URL_KINDS[kind]
    shown = redact(url)
    problem = _without_secrets(str(problem), url)
    where = {"flag": "on the command line", "env": "in the environment", "default": "by default",
             "": ""}.get(source, source.replace("file ", "in ", 1))
    named = f"{setting} ({where})" if where else setting
    return InvalidUrl(f"{named} is not a valid {k.what}: {problem}: {shown!r}",
                      hint=f"Write it as {k.example}.",
                      details={"setting": setting, "source": source.split(" ", 1)[0] or "unknown", "value": shown,
                                "problem": str(problem)})


def _without_secrets(problem: str, url: str) -> str:
    """``problem`` if it quotes nothing of what could be the URL's password, else a wording that
    quotes nothing (a parse error near the user info may quote a piece of the password)."""
    if "://" not in url:
        secrets = [m.group(2) for m in _CONNINFO_SECRET.finditer(url)]
    else:
        userinfo = url.partition("://")[2].rpartition("@")[0]
        secrets = [userinfo.partition(":")[2]] if ":" in userinfo else []
        query = url.partition("?")[2]
        secrets += [v for k, _, v in (i.partition("=") for i in query.split("&")) if k.lower() in _SECRET_KEYS]
    quoted = re.findall(r"'([^']*)'", problem) + re.findall(r'"([^"]*)"', problem)
    for secret in (x for x in secrets if x):
        # a shared run of 3 characters quotes a piece of the password (shorter runs say nothing useful)
        if any(q == secret or _overlap(q, secret) for q in quoted) or (len(secret) >= 3 and secret in problem):
            return ("it cannot be parsed around the user name and password (is a special character in the "
                    "password not percent-encoded? write @ as %40, / as %2F, ? as %3F, : as %3A)")
    return problem


def _overlap(a: str, b: str, n: int = 3) -> bool:
    """Do ``a`` and ``b`` share a run of ``n`` characters?"""
    return any(a[i:i + n] in b for i in range(max(0, len(a) - n + 1)))


def check(kind: str, url: str, *, setting: str, source: str) -> None:
    """Raise the ConfigError of ``invalid`` if ``url`` is not a valid URL of ``kind``."""
    try:
        _CHECKS[kind](url)
    except UrlProblem as exc:
        raise invalid(kind, url, exc, setting=setting, source=source) from None


