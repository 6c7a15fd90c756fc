"""Typed, deterministic replacement tokens: keyed pseudonyms, not anonymisation.

``[EMAIL:kqtbmfhcvrsdpgnj]`` = type + the first 64 bits of
HMAC-SHA256(scrub key, ``TYPE:normalized value``), written as 16 characters of
the "consonant hex" alphabet ``bcdfghjklmnpqrst`` (one letter per 4 bits).
Normalization is done by the detectors: digits only (Devanagari mapped to
ASCII; for PHONE the national number without country code or trunk 0) and
lowercase for emails.  The same value therefore gets the same token everywhere
in one export, and different exports (different keys) cannot be joined.

What a token reveals (see ``docs/scrub.md``): without the key, only that two
places hold the same value (64 bits: two distinct values share a token with
odds of about n²/2⁶⁵, i.e. ~10⁻⁹ at 200,000 distinct values per export).  With
the key, a token is a pseudonym: anyone can hash every candidate of a small
space (all 10⁹ SSNs, a list of phone numbers or emails) and find the value,
so the key must be kept like the data it protects.  The key must be at least
:data:`MIN_KEY_BYTES` bytes of randomness.

Tokens contain no digit at all (so never a run of 7+ digits), no vowel (so they
spell no word a context rule could read), no ``@`` and no JSON-special
character: they never match a detector again (idempotence) and can be written
into raw JSON text without escaping.
"""

from __future__ import annotations

import binascii
import hmac
import re

from swarm.errors import ConfigError

__all__ = ["ALPHABET", "MIN_KEY_BYTES", "TOKEN_CHARS", "TOKEN_RE", "TOKEN_RE_SOURCE", "Tokenizer", "check_key"]

ALPHABET = "bcdfghjklmnpqrst"  # 16 consonants: one per hex digit, no digits, no vowels
TOKEN_CHARS = 16  # 64 bits
MIN_KEY_BYTES = 32
TOKEN_RE_SOURCE = rf"\[(?:PAN|AADHAAR|SSN|EMAIL|PHONE):[{ALPHABET}]{{{TOKEN_CHARS}}}\]"
TOKEN_RE = re.compile(TOKEN_RE_SOURCE)
_TO_ALPHABET = bytes.maketrans(b"0123456789abcdef", ALPHABET.encode())


def check_key(key: object, *, source: str = "the scrub key") -> bytes:
    """``key`` as bytes if it is at least :data:`MIN_KEY_BYTES` long; :class:`ConfigError` (exit 3) otherwise.

    A short key lets whoever guesses it turn every token back into its value by
    trying candidates, so it is refused rather than stretched.
    """
    if not isinstance(key, bytes | bytearray):
        raise ConfigError(f"{source} must be bytes", hint="Pass the raw key bytes.")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{source} is {len(key)} bytes; at least {MIN_KEY_BYTES} random bytes are required",
            hint=f"Create one with: head -c {MIN_KEY_BYTES} /dev/urandom > scrub.key (and chmod 600 it), "
                 f"or set SWARM_SCRUB_KEY to {2 * MIN_KEY_BYTES} hex digits "
                 "(python -c 'import secrets; print(secrets.token_hex(32))').")
    return bytes(key)


class Tokenizer:
    """Maps (type, normalized value) to its token; memoized per instance.

    Refuses (``ConfigError``) a key shorter than :data:`MIN_KEY_BYTES`.
    """

    __slots__ = ("_cache", "_key", "_mac")

    def __init__(self, key: bytes) -> None:
        self._key = check_key(key)
        self._cache: dict[tuple[str, str], str] = {}
        # the keyed state once; each token copies it (half the hashing of hmac.digest per call)
        self._mac = hmac.new(self._key, digestmod="sha256")

    @property
    def key(self) -> bytes:
        """The key the tokens are made with."""
        return self._key

    def token(self, typ: str, norm: str) -> str:
        """The replacement token for a value of type ``typ`` normalized as ``norm``."""
        k = (typ, norm)
        tok = self._cache.get(k)
        if tok is None:
            mac = self._mac.copy()
            mac.update(f"{typ}:{norm}".encode())
            digest = mac.digest()
            tok = f"[{typ}:{binascii.b2a_hex(digest[:TOKEN_CHARS // 2]).translate(_TO_ALPHABET).decode()}]"
            self._cache[k] = tok
        return tok
