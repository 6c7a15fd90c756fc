"""Who vouches for a run archive: this deployment's export signing key, the exporters it trusts,
and the signature an export carries.

Files, all under ``SWARM_HOME`` (never in the backup repository, never in an archive):

* ``keys/export-signing.key``: this deployment's Ed25519 private key (PKCS#8 PEM, 0600, in a
  0700 directory). Created on first use: the first ``swarm admin export`` or
  ``swarm admin keys export-public``. Creation writes a ``.export-signing.key.tmp-*`` file
  (0600, fsynced) and hard-links it to the final name, which fails if another process won the
  race (its key is then used); a kill -9 leaves at most the temporary file, never a partial
  key under the final name. Losing the key only means trusting a new one on every importer.
* ``trusted-exporters/ed25519-<16 hex>.pem``: one public key (SubjectPublicKeyInfo PEM, 0600,
  directory 0700) per exporting deployment this one trusts, added by ``keys trust FILE``
  (temporary file + rename: a crash leaves no half-written key). A deployment always trusts
  its own key too, so re-importing one's own export needs no step.

The signature is the archive's first member, ``signature.json``, read before anything else
is trusted::

    {"format": "swarm-run-export-signature", "version": 1, "algorithm": "ed25519",
     "signer": "ed25519:<16 hex>", "public_key": "<base64 of the 32 raw bytes>",
     "signed_member": "manifest.json", "signed_sha256": "<hex SHA-256 of manifest.json>",
     "signature": "<base64 Ed25519 signature of CONTEXT + the exact bytes of manifest.json>"}

``manifest.json`` names the run, the ``scrubbed`` / ``contains_pii`` flags, the scrubber
version and the name, size and SHA-256 of every other member, so the signature covers
everything an import trusts: changing any member or flag breaks it.

Verification (:func:`check_signature`) first checks the signature against the public key the
archive names, so an archive changed after signing is reported as such (``signature-invalid``,
never overridable) whoever signed it; then it looks the key up among the trusted ones (full
key compared, the fingerprint is only a name). :func:`refuse_unvouched` turns an unsigned archive or an
untrusted signer into a refusal unless ``--allow-unsigned``, in which case
:func:`warn_unvouched` writes the loud warning listing what nothing vouches for.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.crypto import signing
from swarm.errors import RefusedError, SignatureInvalid, SigningKeyError, UnsignedArchive, UntrustedSigner
from swarm.model.archive import MANIFEST_NAME

SIGNING_KEY = Path("keys") / "export-signing.key"
TRUST_DIR = "trusted-exporters"
SIGNATURE_NAME = "signature.json"
SIGNATURE_FORMAT = "swarm-run-export-signature"
SIGNATURE_VERSION = 1
MAX_SIGNATURE_BYTES = 16 << 10
MAX_KEY_FILE_BYTES = 64 << 10
CONTEXT = b"swarm-run-export-signature/1\0"  # domain separation: this key signs nothing else
TRUST_HINT = ("Trust the exporting deployment's key: on it run `swarm admin keys export-public FILE`, copy FILE "
              "here and run `swarm admin keys trust FILE`. Or pass --allow-unsigned to import it anyway "
              "(nothing then vouches for its origin, its scrubbed flag or its contents).")
NOT_VOUCHED = ["origin (which deployment wrote it)", "the scrubbed / contains_pii flags (it may hold unscrubbed "
               "production data)", "the contents (rows and objects may be forged or altered)"]


# ---------------------------------------------------------------------------------- own key
@dataclass(frozen=True)
class ExportSigningKey:
    path: Path
    private: bytes = field(repr=False)
    public: bytes
    fingerprint: str

    def sign_manifest(self, manifest: bytes) -> bytes:
        """The ``signature.json`` member for an archive whose ``manifest.json`` is ``manifest``."""
        body = {"format": SIGNATURE_FORMAT, "version": SIGNATURE_VERSION, "algorithm": signing.ALGORITHM,
                "signer": self.fingerprint, "public_key": base64.b64encode(self.public).decode(),
                "signed_member": MANIFEST_NAME, "signed_sha256": hashlib.sha256(manifest).hexdigest(),
                "signature": base64.b64encode(signing.sign(self.private, CONTEXT + manifest)).decode()}
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def signing_key_path(home: Path) -> Path:
    return home / SIGNING_KEY


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_new(path: Path, data: bytes) -> Path:
    """``data`` in a fresh 0600 temporary file next to ``path`` (fsynced); returns its path."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _read_key_file(path: Path, *, private: bool) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SigningKeyError(f"cannot read {path}: {exc.strerror}",
                              hint="Check the path and its permissions (symbolic links are not followed).") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SigningKeyError(f"{path} is not a regular file")
        if private and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningKeyError(f"export signing key {path} is readable by other users "
                                  f"(mode {stat.S_IMODE(st.st_mode):o})", hint=f"Run `chmod 600 {path}`.")
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SigningKeyError(f"{path} is too large to be a key file")
    return data


def load_signing_key(home: Path, *, create: bool = True) -> tuple[ExportSigningKey, bool]:
    """This deployment's export signing key, and whether it was created now.

    ``create=False`` raises ``SigningKeyError`` when there is none. See the module docstring
    for the file and what a crash while creating it leaves.
    """
    path = signing_key_path(home)
    created = False
    try:
        data = _read_key_file(path, private=True)
    except FileNotFoundError:
        if not create:
            raise SigningKeyError(f"this deployment has no export signing key ({path})",
                                  hint="It is created by the first `swarm admin export` or by "
                                       "`swarm admin keys export-public FILE`.") from None
        _private_dir(path.parent)
        tmp = _write_new(path, signing.private_to_pem(signing.new_private_key()))
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            tmp.unlink()
        _fsync_dir(path.parent)
        data = _read_key_file(path, private=True)
    try:
        raw = signing.private_from_pem(data)
    except SigningKeyError as exc:
        raise SigningKeyError(f"export signing key {path} is damaged: {exc.message}",
                              hint="Restore it from a copy, or move it away: a new key is created on the next "
                                   "export, and importers must then trust the new public key.") from exc
    public = signing.public_key(raw)
    return ExportSigningKey(path, raw, public, signing.fingerprint(public)), created


# ---------------------------------------------------------------------------------- trusted keys
@dataclass(frozen=True)
class TrustedKey:
    fingerprint: str
    public: bytes = field(repr=False)
    path: str  # the trust file, or this deployment's own signing key
    own: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "path": self.path, "own": self.own,
                "public_key": base64.b64encode(self.public).decode()}


@dataclass
class Trust:
    """The public keys an import accepts signatures from."""

    keys: list[TrustedKey]

    def find(self, public: bytes) -> TrustedKey | None:
        return next((k for k in self.keys if k.public == public), None)


def trust_dir(home: Path) -> Path:
    return home / TRUST_DIR


def _trust_file(home: Path, fingerprint: str) -> Path:
    return trust_dir(home) / (fingerprint.replace(":", "-") + ".pem")


def read_public_key(path: Path) -> bytes:
    """The raw Ed25519 public key in the PEM file ``path``."""
    try:
        data = _read_key_file(path, private=False)
    except FileNotFoundError as exc:
        raise SigningKeyError(f"public key file {path} does not exist",
                              hint="Write it on the exporting deployment with `swarm admin keys export-public "
                                   "FILE`.") from exc
    try:
        return signing.public_from_pem(data)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{path}: {exc.message}",
                              hint="Give the file `swarm admin keys export-public FILE` wrote on the exporting "
                                   "deployment.") from exc


def export_public(home: Path, output: Path, *, force: bool = False) -> tuple[ExportSigningKey, bool]:
    """Write this deployment's public key (PEM) to ``output``, creating the key pair if needed.
    Returns the key and whether it was created now. Refuses to replace ``output`` unless ``force``."""
    key, created = load_signing_key(home, create=True)
    output = output.expanduser().absolute()
    if (output.exists() or output.is_symlink()) and not force:
        raise RefusedError(f"{output} already exists", hint="Choose another file, or pass --force to replace it.")
    tmp = _write_new(output, signing.public_to_pem(key.public))  # 0600 like everything swarm writes
    try:
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return key, created


def trust_key(home: Path, public_key_file: Path) -> tuple[TrustedKey, bool]:
    """Trust the exporter whose public key is in ``public_key_file``. Returns the key and whether
    it was added now (False: it was trusted already). Idempotent."""
    public = read_public_key(public_key_file)
    fp = signing.fingerprint(public)
    target = _trust_file(home, fp)
    own = _own(home)
    if own is not None and own.public == public:
        return own, False
    for k in trusted_keys(home):
        if k.public == public:
            return k, False
    if target.exists():
        raise RefusedError(f"another trusted key has fingerprint {fp} ({target})",
                           hint="Compare the two keys; remove the wrong one with `swarm admin keys untrust`.")
    _private_dir(target.parent)
    tmp = _write_new(target, signing.public_to_pem(public))
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return TrustedKey(fp, public, str(target)), True


def untrust_key(home: Path, fingerprint: str) -> list[str]:
    """Stop trusting the exporter ``fingerprint``; returns the trust files removed."""
    removed = []
    for k in trusted_keys(home):
        if not k.own and k.fingerprint == fingerprint:
            Path(k.path).unlink(missing_ok=True)
            removed.append(k.path)
    return removed


def _own(home: Path) -> TrustedKey | None:
    if not signing_key_path(home).exists():
        return None
    key, _ = load_signing_key(home, create=False)
    return TrustedKey(key.fingerprint, key.public, str(key.path), own=True)


def trusted_keys(home: Path) -> list[TrustedKey]:
    """The keys in ``trusted-exporters/`` (a file that is not a public key is an error naming it)."""
    d = trust_dir(home)
    if not d.is_dir():
        return []
    out = []
    for path in sorted(d.glob("*.pem")):
        public = read_public_key(path)
        out.append(TrustedKey(signing.fingerprint(public), public, str(path)))
    return out


def load_trust(home: Path) -> Trust:
    """What an import on this deployment accepts: its own key (if it has one) and the trusted ones."""
    own = _own(home)
    return Trust(([own] if own else []) + trusted_keys(home))


# ---------------------------------------------------------------------------------- verification
@dataclass
class Provenance:
    """What vouches for an archive: ``status`` is ``trusted``, ``untrusted`` (signed by a key not
    trusted here) or ``unsigned``."""

    status: str
    signer: str = ""
    trusted_key: str = ""
    warning: str = ""
    not_vouched: list[str] = field(default_factory=list)

    @property
    def vouched(self) -> bool:
        return self.status == "trusted"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "vouched": self.vouched, "signer": self.signer or None,
                "trusted_key": self.trusted_key or None, "not_vouched": list(self.not_vouched),
                "warning": self.warning or None}


def _bad(message: str) -> SignatureInvalid:
    return SignatureInvalid(f"the archive's signature does not hold: {message}",
                            hint="The archive was changed after it was signed (or damaged). Nothing was written. "
                                 "Get the original from the exporting deployment; --allow-unsigned does not "
                                 "override a broken signature.")


def check_signature(envelope: bytes | None, manifest: bytes, trust: Trust) -> Provenance:
    """Check ``envelope`` (the ``signature.json`` member, None if the archive has none) against
    ``manifest`` (the exact bytes of ``manifest.json``). Raises ``SignatureInvalid`` if it does
    not hold; otherwise says who signed and whether that key is trusted here."""
    if envelope is None:
        return Provenance("unsigned")
    try:
        d = json.loads(envelope)
        if not isinstance(d, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"{SIGNATURE_NAME} is not valid JSON ({exc})") from exc
    if d.get("format") != SIGNATURE_FORMAT or d.get("version") != SIGNATURE_VERSION:
        raise _bad(f"{SIGNATURE_NAME} is not a version-{SIGNATURE_VERSION} {SIGNATURE_FORMAT}")
    if d.get("algorithm") != signing.ALGORITHM or d.get("signed_member") != MANIFEST_NAME:
        raise _bad(f"{SIGNATURE_NAME} names algorithm {d.get('algorithm')!r} over {d.get('signed_member')!r}")
    try:
        public = base64.b64decode(str(d["public_key"]), validate=True)
        sig = base64.b64decode(str(d["signature"]), validate=True)
        fp = signing.fingerprint(public)
    except (KeyError, ValueError, SigningKeyError) as exc:
        raise _bad(f"{SIGNATURE_NAME} has a malformed key or signature") from exc
    if d.get("signer") != fp:
        raise _bad(f"it names signer {str(d.get('signer'))[:40]!r} but carries the key of {fp}")
    if d.get("signed_sha256") != hashlib.sha256(manifest).hexdigest():
        raise _bad(f"{MANIFEST_NAME} changed after it was signed")
    if not signing.verify(public, CONTEXT + manifest, sig):
        raise _bad(f"the Ed25519 signature by {fp} does not verify")
    known = trust.find(public)
    if known is None:
        return Provenance("untrusted", signer=fp)
    return Provenance("trusted", signer=fp, trusted_key="own signing key" if known.own else known.path)


def _what(p: Provenance) -> str:
    return ("carries no signature" if p.status == "unsigned" else
            f"is signed by {p.signer}, a key this deployment does not trust")


def refuse_unvouched(p: Provenance, *, allow_unsigned: bool) -> Provenance:
    """Refuse an unsigned archive or an untrusted signer unless ``allow_unsigned``."""
    if p.vouched or allow_unsigned:
        return p
    cls = UnsignedArchive if p.status == "unsigned" else UntrustedSigner
    raise cls(f"the archive {_what(p)}; refused before anything was written", hint=TRUST_HINT,
              details={"signer": p.signer or None, "status": p.status})


def warn_unvouched(p: Provenance, *, run_id: str, scrubbed: bool, contains_pii: bool) -> Provenance:
    """Fill in the loud warning and what nothing vouches for (an archive let in by
    ``--allow-unsigned``); a trusted archive passes unchanged."""
    if p.vouched:
        return p
    p.not_vouched = list(NOT_VOUCHED)
    p.warning = (f"NOT VOUCHED FOR: this archive {_what(p)}, and it is imported only because of --allow-unsigned. "
                 f"Nothing vouches for its origin, for its flags (it says scrubbed={str(scrubbed).lower()}, "
                 f"contains_pii={str(contains_pii).lower()}: treat it as unscrubbed production data), or for its "
                 f"contents (rows and objects could be forged; they were only checked to belong to run {run_id}).")
    return p
