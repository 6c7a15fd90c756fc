"""The pure rules of swarm.model.secrets: keyed value matching, placeholders, sources, the table."""
from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.model import state
from swarm.model.secrets import (
    SecretScanner,
    SecretSource,
    SourceProblem,
    TableProblem,
    ValueMatcher,
    parse_source,
    policy_from_toml,
    redact_shapes,
    secret_path_reason,
    weakness,
)


def test_one_scanner() -> None:
    """The state snapshot's names re-export the one module's objects: one set of patterns."""
    from swarm.model import secrets as one

    assert state.SecretScanner is one.SecretScanner and state.SECRET_SHAPES is one.SECRET_SHAPES
    assert state.secret_name_reason is one.secret_name_reason


def test_matcher_keeps_no_value() -> None:
    value = secrets.token_urlsafe(24).encode()
    m = ValueMatcher()
    assert m.add("jwt", value)
    held = repr(vars(m)) + repr(m.groups())
    assert value.decode() not in held and value.decode()[:12] not in held


@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(min_value=1, max_value=64))
def test_value_found_across_any_pieces(before: bytes, after: bytes, piece: int) -> None:
    value = b"Zq9_-" + secrets.token_urlsafe(18).encode() + b"+/="
    m = ValueMatcher()
    m.add("s", value)
    data = before + value + after
    scan = m.scan()
    for i in range(0, len(data), piece):
        scan.feed(data[i:i + piece])
    assert scan.found == ["s"]


def test_value_not_found_when_absent_or_altered() -> None:
    value = secrets.token_hex(20).encode()
    m = ValueMatcher()
    m.add("a", value)
    m.add("b", secrets.token_hex(20).encode())
    scan = m.scan()
    scan.feed(b"x" + value[:-1] + b"g" + value[1:] + b" " + secrets.token_hex(64).encode())
    assert scan.found == []
    scan.feed(b"..." + value + b"...")
    assert scan.found == ["a"]


def test_short_values_are_not_looked_for() -> None:
    m = ValueMatcher()
    assert m.add("x", b"abc") is False and m.empty


@pytest.mark.parametrize("value, reason", [
    (b"", "empty"), (b" \n", "empty"), (b"changeme", "placeholder"), (b"<jwt-secret>", "<...>"),
    (b"${SECRET}", "${...}"), (b"{{ vault_jwt }}", "${...}"), (b"XXXXXXXXXXXXXXXXXXXX", "xxx"),
    (b"todo-fill-this-in-before-prod", "TODO"), (b"your-api-key-goes-here-ok", "your-"),
    (b"0000000000000000000", "repeated"), (b"abc123", "shorter than 16"),
])
def test_weak_values(value: bytes, reason: str) -> None:
    problem = weakness(value)
    assert problem is not None and reason in problem
    assert value.decode().strip() == "" or value.decode() not in problem  # never quotes the value


def test_strong_values_pass() -> None:
    for _ in range(50):
        assert weakness(secrets.token_urlsafe(24).encode()) is None
        assert weakness(secrets.token_hex(16).encode()) is None


@pytest.mark.parametrize("text, expected", [
    ("env:SWARM_JWT_SECRET", SecretSource("env", "SWARM_JWT_SECRET")),
    ("file:/run/secrets/jwt", SecretSource("file", "/run/secrets/jwt")),
    ("file:///run/secrets/jwt", SecretSource("file", "/run/secrets/jwt")),
    ("file:~/.config/jwt", SecretSource("file", "~/.config/jwt")),
    ("aws-secretsmanager:prod/swarm/jwt?region=eu-west-1",
     SecretSource("aws-secretsmanager", "prod/swarm/jwt", "eu-west-1")),
    ("aws-secretsmanager:arn:aws:secretsmanager:us-east-2:123456789012:secret:jwt-AbCdEf",
     SecretSource("aws-secretsmanager", "arn:aws:secretsmanager:us-east-2:123456789012:secret:jwt-AbCdEf",
                  "us-east-2")),
    ("aws-secretsmanager:jwt?region=us-east-1&endpoint=http://127.0.0.1:5000",
     SecretSource("aws-secretsmanager", "jwt", "us-east-1", "http://127.0.0.1:5000")),
])
def test_sources(text: str, expected: SecretSource) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize("text, problem", [
    ("SWARM_JWT_SECRET", "no scheme"), ("vault:secret/jwt", "unknown source scheme 'vault'"),
    ("env:1BAD", "not an environment variable"), ("file:relative", "not an absolute path"),
    ("aws-secretsmanager:jwt", "names no region"), ("aws-secretsmanager:?region=us-east-1", "names no secret"),
    ("aws-secretsmanager:jwt?region=us-east-1&stage=x", "unknown parameter 'stage'"),
    ("aws-secretsmanager:jwt?region=us-east-1&endpoint=ftp://h", "endpoint"),
])
def test_bad_sources(text: str, problem: str) -> None:
    with pytest.raises(SourceProblem, match=problem.replace("(", r"\(")):
        parse_source(text)


def test_table_defaults_and_keys() -> None:
    p = policy_from_toml(None)
    assert {n: str(s) for n, s in p.sources.items()} == {
        "jwt": "env:SWARM_JWT_SECRET", "oidc_client_secret": "env:SWARM_OIDC_CLIENT_SECRET",
        "llm.default": "env:SWARM_LLM_API_KEY"}
    p = policy_from_toml({"oidc_client_secret": "", "llm": {"openai": "env:OPENAI_API_KEY"}, "min_length": 32})
    assert list(p.sources) == ["jwt", "llm.openai"] and p.not_used == ("oidc_client_secret",) and p.min_length == 32
    for table, key in (({"jwt_secret": "env:X"}, "jwt_secret"), ({"llm": {"a": "s3:x"}}, "llm.a"),
                       ({"llm": "env:X"}, "llm"), ({"jwt": 5}, "jwt"), ({"min_length": True}, "min_length")):
        with pytest.raises(TableProblem) as exc:
            policy_from_toml(table)
        assert exc.value.key == key


def test_redact_shapes_and_paths() -> None:
    out, kinds = redact_shapes("token sk-abcdefghij1234567890XYZ and AKIAIOSFODNN7EXAMPLE")
    assert kinds == ["AWS access key id", "API key (sk-...)"]
    assert "sk-abcdef" not in out and "AKIA" not in out and "[secret removed: JWT]" not in out
    scanner = SecretScanner()
    scanner.feed(out.encode())
    assert scanner.found == []
    assert secret_path_reason("a/b/server.pem") == "secret by name (*.pem)"
    assert secret_path_reason("secrets/x.json") == "secret by name (secrets/)"
    assert secret_path_reason("reports/secrets.json") is None
