"""Typed, deterministic replacement tokens.

``[EMAIL:3f9a1c]`` = type + the first 6 hex digits of
HMAC-SHA256(export key, ``TYPE:normalized value``).  Normalization is done by
the detectors: digits only (Devanagari mapped to ASCII; for PHONE the national
number without country code or trunk 0) and lowercase for emails.  The same
value therefore gets the same token everywhere in one export, and different
exports (different keys) cannot be joined.

Tokens contain no digit run of 7+, no ``@`` and no JSON-special character, so
they never match a detector again (idempotence) and can be written into raw
JSON text without escaping.
"""

from __future__ import annotations

import hmac
import re

__all__ = ["TOKEN_RE", "Tokenizer"]

TOKEN_RE = re.compile(r"\[(?:PAN|AADHAAR|SSN|EMAIL|PHONE):[0-9a-f]{6}\]")


class Tokenizer:
    """Maps (type, normalized value) to its token; memoized per instance."""

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) == 0:
            raise ValueError("the scrub key must be non-empty bytes")
        self._key = bytes(key)
        self._cache: dict[tuple[str, str], str] = {}

    def token(self, typ: str, norm: str) -> str:
        """The replacement token for a value of type ``typ`` normalized as ``norm``."""
        k = (typ, norm)
        tok = self._cache.get(k)
        if tok is None:
            digest = hmac.digest(self._key, f"{typ}:{norm}".encode(), "sha256")
            tok = f"[{typ}:{digest[:3].hex()}]"
            self._cache[k] = tok
        return tok
