"""Reading a secret from where it is kept: the environment, a file, or AWS Secrets Manager.

``read_secret(source)`` returns a ``SecretRead``: the value's bytes (the caller hashes them
and lets them go: nothing here stores, logs or prints a value) or ``problem`` saying why it
could not be read (``missing``, ``unreadable``), plus facts about the source (for Secrets
Manager: how many versions it keeps and which stages, and whether it is scheduled for
deletion). Every failure is a result, never an exception, so one bad secret does not hide
the others.

Secrets Manager is reached with boto3 (credentials from its usual chain: environment,
profile, instance role), at ``endpoint`` when the source names one. What is read:
``DescribeSecret`` (``DeletedDate``, ``VersionIdsToStages``) and ``GetSecretValue`` of the
``AWSCURRENT`` version (``SecretString`` as UTF-8, or ``SecretBinary``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from swarm.model.secrets import AWS_SM, ENV, FILE, SecretSource

MISSING, UNREADABLE = "missing", "unreadable"
MAX_FILE_BYTES = 1 << 20  # a secret file larger than this is not a secret


@dataclass
class SecretRead:
    value: bytes | None
    state: str | None = None  # None (read), MISSING or UNREADABLE
    problem: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def read_secret(source: SecretSource, *, environ: dict[str, str] | None = None, client: Any = None) -> SecretRead:
    """The value at ``source`` (see the module docstring); ``environ`` defaults to ``os.environ``."""
    if source.scheme == ENV:
        env = os.environ if environ is None else environ
        if source.ref not in env:
            return SecretRead(None, MISSING, f"environment variable {source.ref} is not set")
        return SecretRead(env[source.ref].encode("utf-8", "surrogateescape"))
    if source.scheme == FILE:
        return _read_file(Path(source.ref).expanduser())
    if source.scheme == AWS_SM:
        return _read_secretsmanager(source, client)
    raise AssertionError(f"unknown scheme {source.scheme}")  # parse_source admits no other


def _read_file(path: Path) -> SecretRead:
    try:
        fd = os.open(path, os.O_RDONLY)  # symlinks followed: Kubernetes mounts secrets through them
    except FileNotFoundError:
        return SecretRead(None, MISSING, f"file {path} does not exist")
    except OSError as exc:
        return SecretRead(None, UNREADABLE, f"file {path} cannot be read: {exc.strerror}")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        facts = {"mode": oct(st.st_mode & 0o777)}
        if st.st_size > MAX_FILE_BYTES:
            return SecretRead(None, UNREADABLE, f"file {path} holds {st.st_size} bytes: not a secret", facts)
        data = f.read(MAX_FILE_BYTES + 1)
    # one trailing newline (an editor's, or `echo`'s) is not part of the secret
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return SecretRead(data, facts=facts)


def secretsmanager_client(region: str | None, endpoint: str | None) -> Any:
    return boto3.session.Session().client(
        "secretsmanager", region_name=region, endpoint_url=endpoint,
        config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}))


def _read_secretsmanager(source: SecretSource, client: Any) -> SecretRead:
    where = f"Secrets Manager secret {source.ref} ({source.region}{', ' + source.endpoint if source.endpoint else ''})"
    try:
        client = client or secretsmanager_client(source.region, source.endpoint)
        try:
            desc = client.describe_secret(SecretId=source.ref)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return SecretRead(None, MISSING, f"{where} does not exist")
            return SecretRead(None, UNREADABLE, f"{where} cannot be described: {code or exc}")
        stages: dict[str, list[str]] = {str(k): [str(s) for s in v]
                                        for k, v in (desc.get("VersionIdsToStages") or {}).items()}
        facts: dict[str, Any] = {
            "versions": len(stages),
            "stages": sorted({s for v in stages.values() for s in v}),
            "previous": any("AWSPREVIOUS" in v for v in stages.values()),
            "rotation_enabled": bool(desc.get("RotationEnabled")),
            "scheduled_for_deletion": desc.get("DeletedDate") is not None,
        }
        if facts["scheduled_for_deletion"]:
            return SecretRead(None, MISSING, f"{where} is scheduled for deletion (on {desc.get('DeletedDate')})",
                              facts)
        try:
            got = client.get_secret_value(SecretId=source.ref, VersionStage="AWSCURRENT")
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return SecretRead(None, MISSING, f"{where} has no AWSCURRENT value", facts)
            return SecretRead(None, UNREADABLE, f"{where} cannot be read: {code or exc}", facts)
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError) as exc:
        return SecretRead(None, UNREADABLE, f"{where} cannot be reached: {exc}")
    except botocore.exceptions.NoCredentialsError:
        return SecretRead(None, UNREADABLE, f"{where}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
                                            "AWS_SECRET_ACCESS_KEY, a profile or an instance role)")
    except botocore.exceptions.BotoCoreError as exc:
        return SecretRead(None, UNREADABLE, f"{where} cannot be read: {exc}")
    if got.get("SecretString") is not None:
        value = str(got["SecretString"]).encode("utf-8", "surrogateescape")
    else:
        value = bytes(got.get("SecretBinary") or b"")
    return SecretRead(value, facts=facts)
