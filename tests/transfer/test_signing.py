"""Finding 7: imported rows are tied to the declared run, and archives are signed.

Each test performs an attack that used to succeed (a forged approval landing on another
run, flipped scrubbed / contains_pii flags under a recomputed checksum, an altered member,
an unsigned or foreign archive imported silently) and checks it now fails, with nothing
written. The prod -> dev path (export-public, trust, import) and ``--allow-unsigned`` are
exercised through the command line, as an operator runs them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from swarm.crypto import signing
from swarm.errors import (
    HostileArchive,
    SignatureInvalid,
    SigningKeyError,
    SwarmError,
    UnsignedArchive,
    UntrustedSigner,
)
from swarm.model.archive import MANIFEST_NAME, RunManifest
from swarm.services.transfer.export import export_run
from swarm.services.transfer.imports import import_run
from swarm.services.transfer.trust import (
    SIGNATURE_NAME,
    ExportSigningKey,
    Trust,
    check_signature,
    export_public,
    load_signing_key,
    load_trust,
    trust_key,
    trusted_keys,
    untrust_key,
)
from swarm.sources.postgres.conn import connect

from .conftest import Stack, env_for, run_cli, state
from .test_hostile import Entry, entries_of, info, write

pytestmark = pytest.mark.integration

KEEP = "keep"  # forge(): keep the original signature member as it is


def forge(archive: Path, out: Path, *, rows: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]]
          | None = None, manifest: Callable[[RunManifest], None] | None = None,
          sign: ExportSigningKey | str | None = KEEP) -> Path:
    """Rewrite ``archive`` the way an attacker with a text editor and sha256sum would: edit rows,
    fix each member's size, checksum and row count in the manifest, edit the manifest, recompute
    its own checksum; then keep the original signature, drop it (None), or sign with a key."""
    e = entries_of(archive)
    sig: Entry | None = e.pop(0) if e[0][0].name == SIGNATURE_NAME else None
    m = RunManifest.from_bytes(e[0][1] or b"")
    for i, (ti, data) in enumerate(e[1:], start=1):
        table = ti.name.removeprefix("rows/").removesuffix(".jsonl")
        if ti.name.startswith("rows/") and rows and table in rows:
            parsed = [json.loads(x) for x in (data or b"").splitlines() if x.strip()]
            body = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows[table](parsed))
            e[i] = (info(ti.name, len(body)), body)
            j = next(j for j, x in enumerate(m.members) if x.name == ti.name)
            m.members[j] = dataclasses.replace(m.members[j], size=len(body), sha256=hashlib.sha256(body).hexdigest(),
                                               rows=len(rows[table](parsed)))
    if manifest:
        manifest(m)
    data = m.to_bytes()  # a correctly self-checksummed manifest
    e[0] = (info(MANIFEST_NAME, len(data)), data)
    if sign == KEEP:
        assert sig is not None
        e.insert(0, sig)
    elif isinstance(sign, ExportSigningKey):
        env = sign.sign_manifest(data)
        e.insert(0, (info(SIGNATURE_NAME, len(env)), env))
    return write(out, e)


def strip_signature(archive: Path, out: Path) -> Path:
    e = entries_of(archive)
    assert e[0][0].name == SIGNATURE_NAME
    return write(out, e[1:])


def approvals_of(db_url: str, run_id: str) -> list[tuple[Any, ...]]:
    with connect(db_url) as conn:
        return [tuple(r) for r in conn.execute("SELECT run_id, approver, decision, comment FROM approvals WHERE "
                                               "run_id = %s ORDER BY id", (run_id,)).fetchall()]


def refused(dev: Stack, archive: Path, trust: Trust, exc: type[SwarmError], match: str, **kw: Any) -> SwarmError:
    before = state(dev)
    with pytest.raises(exc, match=match) as ei:
        import_run(archive, dev.db_url, dev.bucket, trust=trust, **kw)
    assert state(dev) == before, "a refused import wrote something"
    return ei.value


@pytest.fixture(scope="module")
def other_run(prod: Stack, run_id: str) -> str:
    return next(r["id"] for r in prod.run_rows if r["id"] != run_id)


@pytest.fixture(scope="module")
def other_archive(prod: Stack, other_run: str, prod_key: ExportSigningKey,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / f"{other_run}.tar.gz"
    export_run(prod.db_url, prod.bucket, other_run, out, scrub=True, signing_key=prod_key)
    return out


@pytest.fixture(scope="module")
def attacker_key(tmp_path_factory: pytest.TempPathFactory) -> ExportSigningKey:
    return load_signing_key(tmp_path_factory.mktemp("attacker-home"))[0]


# ---- rows tied to the run ----------------------------------------------------------------------


def test_forged_approval_for_another_run_refused(dev: Stack, scrubbed_archive: Path, other_archive: Path,
                                                 other_run: str, prod_key: ExportSigningKey, dev_trust: Trust,
                                                 tmp_path: Path) -> None:
    """The reproduced attack: run A's archive carries an approval of run B (already in dev).
    Before, the import added it to run B. Now refused, signed or not, and dev is unchanged."""
    import_run(other_archive, dev.db_url, dev.bucket, trust=dev_trust)
    approvals_before = approvals_of(dev.db_url, other_run)

    def add_approval(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*rows, {"id": 999999, "run_id": other_run, "requested_at": "2024-01-01T00:00:00+00:00",
                        "decided_at": "2024-01-01T00:00:01+00:00", "approver": "mallory", "decision": "approved",
                        "comment": "forged"}]

    # unsigned (the attacker cannot sign as prod) and let in by --allow-unsigned: the row check refuses it
    path = forge(scrubbed_archive, tmp_path / "forged.tar.gz", rows={"approvals": add_approval}, sign=None)
    err = refused(dev, path, dev_trust, HostileArchive, rf"approvals row references run '{other_run}'",
                  allow_unsigned=True)
    assert err.details == {"table": "approvals", "column": "run_id"}
    # even validly signed by the trusted exporter (a compromised or buggy prod): refused
    refused(dev, forge(scrubbed_archive, tmp_path / "signed.tar.gz", rows={"approvals": add_approval},
                       sign=prod_key), dev_trust, HostileArchive, r"approvals row references run")
    # the original signature kept: the manifest no longer matches it
    refused(dev, forge(scrubbed_archive, tmp_path / "kept.tar.gz", rows={"approvals": add_approval}), dev_trust,
            SignatureInvalid, r"manifest.json changed after it was signed")
    assert approvals_of(dev.db_url, other_run) == approvals_before


@pytest.mark.parametrize("what", ["second run", "run renamed", "other pipeline", "no run", "foreign prefix",
                                  "event of another run"])
def test_rows_must_belong_to_the_declared_run(dev: Stack, scrubbed_archive: Path, other_run: str, run_id: str,
                                              prod_key: ExportSigningKey, dev_trust: Trust, tmp_path: Path,
                                              what: str) -> None:
    """Exactly one runs row with the declared id, its pipeline only, children of that run only:
    even an archive validly signed by a trusted exporter is refused otherwise."""
    edits: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = {
        "second run": lambda rs: [*rs, {**rs[0], "id": "run_forged0001", "artefact_prefix": "pipeline_runs/x/"}],
        "run renamed": lambda rs: [{**rs[0], "id": other_run}],
        "other pipeline": lambda rs: [*rs, {**rs[0], "id": "pl_forged", "name": "forged"}],
        "no run": lambda rs: [],
        "foreign prefix": lambda rs: [{**rs[0], "artefact_prefix": f"pipeline_runs/{other_run}/"}],
        "event of another run": lambda rs: [*rs, {**rs[0], "run_id": other_run, "seq": 99999}],
    }
    table = {"other pipeline": "pipelines", "event of another run": "run_events"}.get(what, "runs")
    path = forge(scrubbed_archive, tmp_path / "f.tar.gz", rows={table: edits[what]}, sign=prod_key)
    refused(dev, path, dev_trust, HostileArchive, r"run|pipeline")


# ---- signatures ----------------------------------------------------------------------------------

def test_flipped_flags_under_recomputed_checksum_refused(prod: Stack, dev: Stack, run_id: str,
                                                         prod_key: ExportSigningKey, dev_trust: Trust,
                                                         tmp_path: Path) -> None:
    """An unscrubbed export relabelled scrubbed=true, contains_pii=false with the manifest's
    checksum recomputed: it used to import as 'scrubbed' without a warning."""
    raw = tmp_path / "raw.tar.gz"
    export_run(prod.db_url, prod.bucket, run_id, raw, scrub=False, signing_key=prod_key)

    def launder(m: RunManifest) -> None:
        m.scrubbed, m.contains_pii = True, False

    path = forge(raw, tmp_path / "laundered.tar.gz", manifest=launder)
    for allow in (False, True):  # a broken signature is not something --allow-unsigned overrides
        err = refused(dev, path, dev_trust, SignatureInvalid, r"manifest.json changed after it was signed",
                      allow_unsigned=allow)
        assert int(err.exit_code) == 5 and "--allow-unsigned does not override" in (err.hint or "")
    # and with the manifest's own signed_sha256 matched too, the Ed25519 signature itself fails
    e = entries_of(path)
    env = json.loads(e[0][1] or b"")
    env["signed_sha256"] = hashlib.sha256(e[1][1] or b"").hexdigest()
    body = json.dumps(env).encode()
    refused(dev, write(tmp_path / "resummed.tar.gz", [(info(SIGNATURE_NAME, len(body)), body), *e[1:]]),
            dev_trust, SignatureInvalid, r"does not verify", allow_unsigned=True)


def test_altered_member_refused(dev: Stack, scrubbed_archive: Path, dev_trust: Trust, tmp_path: Path) -> None:
    """A changed row (its checksum fixed in the manifest) breaks the signature."""
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**rows[0], "status": "succeeded" if rows[0]["status"] != "succeeded" else "failed"}]

    refused(dev, forge(scrubbed_archive, tmp_path / "edited.tar.gz", rows={"runs": edit}), dev_trust,
            SignatureInvalid, r"changed after it was signed", allow_unsigned=True)


def test_unsigned_archive_refused(dev: Stack, scrubbed_archive: Path, dev_trust: Trust, tmp_path: Path) -> None:
    err = refused(dev, strip_signature(scrubbed_archive, tmp_path / "u.tar.gz"), dev_trust, UnsignedArchive,
                  r"carries no signature")
    assert int(err.exit_code) == 8 and "keys trust" in (err.hint or "") and "--allow-unsigned" in (err.hint or "")


def test_untrusted_signer_refused(dev: Stack, scrubbed_archive: Path, attacker_key: ExportSigningKey,
                                  dev_trust: Trust, tmp_path: Path) -> None:
    """Re-signed by a key dev never trusted (an attacker's own): refused, naming the key."""
    path = forge(scrubbed_archive, tmp_path / "resigned.tar.gz", sign=attacker_key)
    err = refused(dev, path, dev_trust, UntrustedSigner, attacker_key.fingerprint)
    assert err.details["signer"] == attacker_key.fingerprint and "keys trust" in (err.hint or "")
    # a signature.json anywhere but first is not a member of an export at all
    e = entries_of(path)
    late = write(tmp_path / "late.tar.gz", [*e[1:], e[0]])
    refused(dev, late, dev_trust, UnsignedArchive, r"no signature")
    refused(dev, late, dev_trust, HostileArchive, r"'signature.json' is not part of a swarm run export",
            allow_unsigned=True)


# ---- the command line: prod -> dev, and --allow-unsigned -----------------------------------------

@pytest.fixture(scope="module")
def swarm_app() -> typer.Typer:
    from swarm.cli.main import app
    return app


def test_prod_to_dev_with_trusted_key(swarm_app: typer.Typer, prod: Stack, dev: Stack, run_id: str,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prod_home, dev_home = tmp_path / "prod", tmp_path / "dev"
    out, pub = tmp_path / "run.tar.gz", tmp_path / "prod.pub"
    # on prod: the first export creates the signing key (0600) and signs with it
    monkeypatch.setenv("SWARM_HOME", str(prod_home))
    env_for(monkeypatch, prod)
    code, _, err, d = run_cli(swarm_app, "admin", "export", "--run-id", run_id, "--scrub", "-o", str(out), "--json")
    assert code == 0, err
    key = prod_home / "keys" / "export-signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert "created this deployment's export signing key" in err and d["signer"].startswith("ed25519:")
    code, stdout, _, _ = run_cli(swarm_app, "admin", "keys", "export-public", str(pub))
    assert code == 0 and d["signer"] in stdout
    assert b"PRIVATE" not in pub.read_bytes()
    code, _, _, _ = run_cli(swarm_app, "admin", "keys", "export-public", str(pub))
    assert code == 8  # exists, no --force
    # on dev: before trusting prod, refused (8) naming the way out
    monkeypatch.setenv("SWARM_HOME", str(dev_home))
    env_for(monkeypatch, dev)
    before = state(dev)
    code, _, _, _ = run_cli(swarm_app, "admin", "import", str(out))
    assert code == 8
    assert state(dev) == before
    code, _, _, t = run_cli(swarm_app, "admin", "keys", "trust", str(pub), "--json")
    assert code == 0 and t["fingerprint"] == d["signer"] and t["added"] is True
    code, _, _, t = run_cli(swarm_app, "admin", "keys", "trust", str(pub), "--json")
    assert code == 0 and t["added"] is False
    code, _, _, listing = run_cli(swarm_app, "admin", "keys", "trusted", "--json")
    assert [k["fingerprint"] for k in listing["keys"]] == [d["signer"]]
    code, stdout, err, _ = run_cli(swarm_app, "admin", "import", str(out))
    assert code == 0 and f"imported run {run_id}" in stdout and d["signer"] in stdout and "NOT VOUCHED" not in err
    code, _, _, r = run_cli(swarm_app, "admin", "import", str(out), "--replace", "--json")
    assert code == 0 and r["signature"]["status"] == "trusted" and r["signature"]["signer"] == d["signer"]
    assert r["warnings"] == []
    # untrust: refused again
    code, _, _, _ = run_cli(swarm_app, "admin", "keys", "untrust", d["signer"])
    assert code == 0
    code, _, _, _ = run_cli(swarm_app, "admin", "import", str(out), "--replace")
    assert code == 8


def test_allow_unsigned_imports_loudly(swarm_app: typer.Typer, dev: Stack, scrubbed_archive: Path,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_for(monkeypatch, dev)
    path = strip_signature(scrubbed_archive, tmp_path / "unsigned.tar.gz")
    before = state(dev)
    code, _, _, _ = run_cli(swarm_app, "admin", "import", str(path))
    assert code == 8 and state(dev) == before
    code, _, err, d = run_cli(swarm_app, "admin", "import", str(path), "--allow-unsigned", "--json")
    assert code == 0 and "NOT VOUCHED FOR" in err and "carries no signature" in err
    assert d["signature"]["status"] == "unsigned" and d["signature"]["vouched"] is False
    assert len(d["signature"]["not_vouched"]) == 3 and "origin" in d["signature"]["not_vouched"][0]
    assert d["warnings"] and "scrubbed=true" in d["warnings"][0] and "treat it as unscrubbed" in d["warnings"][0]
    # human output says who signed: nobody
    code, stdout, err, _ = run_cli(swarm_app, "admin", "import", str(path), "--allow-unsigned", "--new-id")
    assert code == 0 and "unsigned" in stdout and "NOT VOUCHED FOR" in err
    code, stdout, _, _ = run_cli(swarm_app, "admin", "import", "--help")
    assert "--allow-unsigned" in stdout


# ---- keys ------------------------------------------------------------------------------------------

def test_signing_primitives() -> None:
    priv = signing.new_private_key()
    pub = signing.public_key(priv)
    fp = signing.fingerprint(pub)
    assert fp.startswith("ed25519:") and len(fp) == len("ed25519:") + 16
    sig = signing.sign(priv, b"m")
    assert signing.verify(pub, b"m", sig) and not signing.verify(pub, b"n", sig)
    assert not signing.verify(pub, b"m", sig[:-1] + bytes([sig[-1] ^ 1])) and not signing.verify(pub, b"m", b"x")
    assert signing.public_from_pem(signing.public_to_pem(pub)) == pub
    assert signing.private_from_pem(signing.private_to_pem(priv)) == priv
    with pytest.raises(SigningKeyError, match="private key"):
        signing.public_from_pem(signing.private_to_pem(priv))
    with pytest.raises(SigningKeyError):
        signing.public_from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_key_files(tmp_path: Path) -> None:
    home, other = tmp_path / "a", tmp_path / "b"
    k1, created = load_signing_key(home)
    k2, again = load_signing_key(home)
    assert created and not again and k1.public == k2.public
    assert stat.S_IMODE(k1.path.stat().st_mode) == 0o600 and not list(k1.path.parent.glob(".*tmp*"))
    os.chmod(k1.path, 0o644)
    with pytest.raises(SigningKeyError, match="readable by other users"):
        load_signing_key(home)
    os.chmod(k1.path, 0o600)
    with pytest.raises(SigningKeyError, match="no export signing key"):
        load_signing_key(other, create=False)
    pub = tmp_path / "a.pub"
    export_public(home, pub)
    with pytest.raises(SigningKeyError, match="private key"):
        trust_key(other, k1.path)  # a private key is never accepted as a "public key file"
    key, added = trust_key(other, pub)
    assert added and key.fingerprint == k1.fingerprint
    assert stat.S_IMODE(Path(key.path).stat().st_mode) == 0o600
    assert [k.fingerprint for k in trusted_keys(other)] == [k1.fingerprint]
    # own key trusted implicitly; trusting it again changes nothing
    assert trust_key(home, pub) == (load_trust(home).keys[0], False) and load_trust(home).keys[0].own
    assert untrust_key(other, k1.fingerprint) and load_trust(other).keys == []
    # a signature checks against the full key, never the fingerprint alone
    manifest = b'{"x": 1}\n'
    env = k1.sign_manifest(manifest)
    assert check_signature(env, manifest, load_trust(home)).status == "trusted"
    assert check_signature(env, manifest, Trust([])).status == "untrusted"
    assert check_signature(None, manifest, Trust([])).status == "unsigned"
    with pytest.raises(SignatureInvalid):
        check_signature(env, manifest + b" ", load_trust(home))
    forged = json.loads(env)
    forged["public_key"] = json.loads(load_signing_key(other)[0].sign_manifest(manifest))["public_key"]
    with pytest.raises(SignatureInvalid, match="names signer"):
        check_signature(json.dumps(forged).encode(), manifest, load_trust(home))
