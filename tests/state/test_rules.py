"""The pure decisions of state snapshots (swarm.model.state): what is left out, which secret
shapes are recognised, when the change cache is trusted. Property tests where a rule is general."""
from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.model.state import (
    READ,
    REUSE,
    TOOL_ENTRIES,
    FileFacts,
    SecretScanner,
    cache_decision,
    exclude_reason,
    secret_kinds,
    tool_paths_for,
)

# AWS's documented example credentials (docs.aws.amazon.com: "Understanding and getting your AWS credentials")
AWS_EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
SECRETS = {
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
    "AWS access key id": f"aws_access_key_id = {AWS_EXAMPLE_ID}\n",
    "AWS secret access key": f"aws_secret_access_key = {AWS_EXAMPLE_SECRET}\n",
    "JWT": f"Authorization: Bearer {JWT}\n",
    "API key (sk-...)": "OPENAI_API_KEY=sk-proj-4f9A7bC2dE5fG8hJ1kL3mN6pQ9rS2tU5\n",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_secret_shape_is_found_and_named_by_kind(kind: str) -> None:
    assert kind in secret_kinds(SECRETS[kind].encode())


@pytest.mark.parametrize("text", [
    "-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----", "[default]\nAWS_SECRET_ACCESS_KEY: " + AWS_EXAMPLE_SECRET,
    '{"aws_secret_access_key": "' + AWS_EXAMPLE_SECRET + '"}', "key=" + AWS_EXAMPLE_ID + ";",
    "sk-ant-api03-abcdEFGH1234ijklMNOP5678"])
def test_documented_and_common_spellings_are_found(text: str) -> None:
    assert secret_kinds(text.encode())


@pytest.mark.parametrize("text", [
    '{"status": "done", "run_id": "r-123"}', "-----BEGIN CERTIFICATE-----", "-----BEGIN PUBLIC KEY-----",
    "AKIA is a prefix", "aws_secret_access_key = short", "sk-learn is a library", "task-1234567890abcdefghij",
    "eyJhbGciOiJIUzI1NiJ9 alone", "the skeleton key"])
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert secret_kinds(text.encode()) == []


json_ish = st.text(alphabet=string.ascii_lowercase + string.digits + ' {}":,\n', max_size=400)


@given(json_ish)
def test_plain_json_like_text_has_no_secret(text: str) -> None:
    assert secret_kinds(text.encode()) == []


@given(before=json_ish, after=json_ish, kind=st.sampled_from(sorted(SECRETS)), data=st.data())
def test_a_secret_split_across_pieces_is_found(before: str, after: str, kind: str, data: st.DataObject) -> None:
    blob = (before + " " + SECRETS[kind] + " " + after).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=6)))
    scanner = SecretScanner()
    prev = 0
    for c in [*cuts, len(blob)]:
        scanner.feed(blob[prev:c])
        prev = c
    assert kind in scanner.found
    reason = scanner.reason()
    assert reason is not None and kind in reason
    assert SECRETS[kind].strip() not in reason  # the kind, never the value


@pytest.mark.parametrize(("path", "is_dir", "why"), [
    ("tls/server.key", False, "*.key"), ("a.pem", False, "*.pem"), ("app/.env", False, ".env"),
    ("secrets", True, "secrets/"), ("x/credentials.json", False, "credentials*"),
    ("credentials", True, "credentials*")])
def test_secret_names_are_left_out_with_the_pattern(path: str, is_dir: bool, why: str) -> None:
    reason = exclude_reason(path, is_dir)
    assert reason is not None and why in reason


@pytest.mark.parametrize(("path", "is_dir"), [("secrets", False), ("keyring.json", False), ("a.key.txt", False),
                                             (".envrc", False), ("batch/run-1/status.json", False),
                                             ("cron", True), ("my.key", True)])
def test_ordinary_names_are_kept(path: str, is_dir: bool) -> None:
    assert exclude_reason(path, is_dir) is None


names = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=20).filter(
    lambda s: s not in (".", ".."))


@given(st.sampled_from(TOOL_ENTRIES), st.lists(names, max_size=3), st.booleans())
def test_tool_files_are_left_out_only_when_the_state_dir_is_home(top: str, below: list[str], is_dir: bool) -> None:
    path = "/".join([top, *below])
    assert exclude_reason(path, is_dir, tool_paths_for(True)) is not None
    reason = exclude_reason(path, is_dir, tool_paths_for(False))
    assert reason is None or reason.startswith("secret by name")


@given(st.lists(names, min_size=1, max_size=4), st.booleans())
def test_a_repository_under_the_state_dir_and_everything_below_it_is_left_out(parts: list[str], is_dir: bool) \
        -> None:
    assert exclude_reason("/".join(["backups", *parts]), is_dir, repo_paths=["backups"]) is not None
    assert exclude_reason("/".join(["backups-other", *parts]), is_dir, repo_paths=["backups"]) is None or \
        exclude_reason("/".join(["backups-other", *parts]), is_dir).startswith("secret")  # type: ignore[union-attr]


facts = st.builds(FileFacts, st.integers(0, 10**9), st.integers(0, 2 * 10**18), st.integers(0, 2 * 10**18),
                  st.integers(1, 10**9))


@given(now=facts, cached=facts, start=st.integers(0, 2 * 10**18), window=st.integers(0, 10**10),
       draw=st.floats(0, 1, exclude_max=True), share=st.floats(0, 1))
def test_the_cache_is_trusted_only_for_unchanged_old_files(now: FileFacts, cached: FileFacts, start: int, window: int,
                                                           draw: float, share: float) -> None:
    d = cache_decision(now, cached, parent_start_ns=start, window_ns=window, draw=draw, rehash_share=share)
    if d.action == REUSE:
        assert now == cached  # size, mtime, ctime and inode all equal
        assert max(now.mtime_ns, now.ctime_ns) < start - window  # not modified near the parent's start
        assert draw >= share  # not drawn for a re-hash
    else:
        assert d.action == READ


@given(now=facts, start=st.integers(0, 2 * 10**18), window=st.integers(0, 10**10))
def test_a_new_file_or_one_without_a_parent_checksum_is_always_read(now: FileFacts, start: int, window: int) -> None:
    assert cache_decision(now, None, parent_start_ns=start, window_ns=window, draw=0.9,
                          rehash_share=0).action == READ
    assert cache_decision(now, now, parent_start_ns=start, window_ns=window, draw=0.9, rehash_share=0,
                          has_checksum=False).action == READ


def test_cache_reasons() -> None:
    f = FileFacts(10, 1_000, 1_000, 7)
    kw = {"window_ns": 3_000_000_000, "rehash_share": 0.1}
    assert cache_decision(f, f, parent_start_ns=10_000_000_000, draw=0.5, **kw).reason == "unchanged"  # type: ignore[arg-type]
    assert cache_decision(f, f, parent_start_ns=10_000_000_000, draw=0.05, **kw).reason == "rehash"  # type: ignore[arg-type]
    assert cache_decision(f, f, parent_start_ns=2_000_000_000, draw=0.5, **kw).reason == "recent"  # type: ignore[arg-type]
    assert cache_decision(f, f, parent_start_ns=None, draw=0.5, **kw).reason == "recent"  # type: ignore[arg-type]
    moved = FileFacts(10, 1_000, 1_000, 8)  # same stat but another inode: replaced by rename
    assert cache_decision(moved, f, parent_start_ns=10_000_000_000, draw=0.5, **kw).reason == "changed"  # type: ignore[arg-type]
