"""PII scrubbing for ``swarm admin export --scrub``.

Owns pure, deterministic PII detection and redaction; imports only the
standard library and :mod:`swarm.errors`.  No I/O besides the text streams
handed to :func:`swarm.scrub.stream.scrub_stream` (which, with ``jobs > 1``,
starts worker processes for JSONL and stops them before it returns).

Entities: payment card numbers (PAN), Aadhaar, US SSN, email addresses and
phone numbers, validated by checksum / numbering plan and, for bare numbers,
by context (see ``docs/scrub.md``).  Values are replaced by typed tokens
``[TYPE:<16 letters>]``: 64 bits of an HMAC under the scrub key (at least 32
bytes), i.e. keyed pseudonyms (see :mod:`swarm.scrub.tokens`).

Public API::

    from swarm.scrub import Scrubber, ScrubReport
    s = Scrubber(key=b"32 random bytes")
    s.scrub_text(text); s.scrub_json(text); s.scrub_jsonl(text); s.scrub(text, "auto")
    s.scrub_value(obj); s.report.to_dict()
"""

from __future__ import annotations

from swarm.scrub.detectors import TYPES, Span, detect
from swarm.scrub.report import ScrubReport
from swarm.scrub.scrubber import FORMATS, Scrubber
from swarm.scrub.tokens import TOKEN_RE

# Recorded in export manifests; bump when detection or token output changes.
VERSION = "3"  # 3: 64-bit tokens in a digit-free alphabet (2: 24-bit hex tokens)

__all__ = ["FORMATS", "TOKEN_RE", "TYPES", "VERSION", "ScrubReport", "Scrubber", "Span", "detect"]
