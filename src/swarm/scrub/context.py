"""Context words that turn a bare number into PII, or rule it out.

A bare digit run (9 digits that could be an SSN, 10 that could be an Indian
mobile, 12 that could be an Aadhaar) is ambiguous: run exports are full of
seeds, byte counts and epoch timestamps of the same length.  Only context
separates them, in both directions:

* *positive* words (``phone``, ``call``, ``SSN``, ``social security``, ``aadhaar``,
  Devanagari ``नंबर``...) near the number, or a JSON key such as ``"phone"``;
* *negative* words right next to it (``bytes``, ``seed``, ``tokens``, ``step``,
  ``order``...) or a JSON key such as ``"size_bytes"``.

Windows are counted in words, never characters, and replacement tokens are
ignored, so scrubbing a neighbour does not change the verdict on a number
(idempotence).  Everything here is pure and cheap; callers only ask for context
after the checksum and shape checks have passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from swarm.scrub.tokens import TOKEN_CHARS, TOKEN_RE_SOURCE

__all__ = ["KeyContext", "Window", "key_words", "window"]

_WORD_RE = re.compile(r"[a-z\u0900-\u0965\u0970-\u097f]+")
_TOKEN_RE = re.compile(TOKEN_RE_SOURCE)
_TOKEN_MAX = len("[AADHAAR:]") + TOKEN_CHARS  # the longest token
_CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z])")

RAW_SPAN = 400  # characters looked at on each side of a candidate; windows are counted in words
# what a window ignores: replacement tokens, e-mail addresses (and their %40 form), digit runs
_NEUTRAL_RE = re.compile(
    TOKEN_RE_SOURCE
    + r"|[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9.\-]+"
    + r"|\+?[0-9\u0966-\u096f][0-9\u0966-\u096f .\-()/]*")
BEFORE_WORDS = 6
AFTER_WORDS = 4
NEAR_WORDS = 2

PHONE_WORDS = frozenset({
    "phone", "phones", "phoneno", "phonenumber", "mobile", "mobiles", "mob", "mobileno", "cell",
    "cellphone", "telephone", "tel", "contact", "call", "calls", "calling", "called", "callback",
    "whatsapp", "sms", "number", "numbers", "otp", "dial", "ring", "reach", "msisdn", "landline",
    "नंबर", "नम्बर", "मोबाइल", "फोन", "फ़ोन", "कॉल", "संपर्क", "नंबरः",
})
# Only meaningful as a JSON key: {"to": "9876543210"} in an SMS tool call.
PHONE_KEY_WORDS = frozenset({"to", "from", "recipient", "sender", "receiver", "msisdn"})
SSN_WORDS = frozenset({"ssn", "ssns", "socialsecurity", "socialsecuritynumber"})
AADHAAR_WORDS = frozenset({"aadhaar", "aadhar", "adhaar", "aadhaarno", "uid", "uidai", "आधार"})
NEGATIVE_WORDS = frozenset({
    "bytes", "byte", "size", "memory", "mem", "tokens", "token", "tok", "seed", "seeds", "step",
    "steps", "batch", "count", "counts", "requests", "request", "rows", "ts", "timestamp",
    "timestamps", "epoch", "epochs", "created", "updated", "expires", "expiry", "id", "ids",
    "uuid", "order", "orders", "ticket", "ref", "txn", "transaction", "invoice", "trace", "span",
    "latency", "duration", "ms", "port", "pid", "warmup", "iter", "iteration", "iterations",
    "samples", "params", "parameters", "lr", "loss", "version", "build", "commit", "sha", "hash",
    "checksum", "amount", "price", "balance", "offset", "length", "len", "nonce", "sku", "gpu",
    "vram", "disk", "kb", "mb", "gb", "tb", "throughput", "seen", "lines", "chars", "records",
    "events", "files", "items", "compact", "job", "pr", "issue", "elapsed", "ns", "rerouted",
    "batchsize", "inr", "usd", "rs", "qty", "quantity", "limit", "total",
})


@dataclass(frozen=True, slots=True)
class KeyContext:
    """Verdicts derived from a JSON key (and its parent key)."""

    words: frozenset[str]

    @property
    def phone(self) -> bool:
        return bool(self.words & PHONE_WORDS) or bool(self.words & PHONE_KEY_WORDS)

    @property
    def ssn(self) -> bool:
        w = self.words
        return bool(w & SSN_WORDS) or ("social" in w and "security" in w)

    @property
    def aadhaar(self) -> bool:
        return bool(self.words & AADHAAR_WORDS)

    @property
    def negative(self) -> bool:
        return bool(self.words & NEGATIVE_WORDS)


NO_KEY = KeyContext(frozenset())


@lru_cache(maxsize=4096)
def key_words(*keys: str) -> KeyContext:
    """Split JSON keys (``customer_phone``, ``sizeBytes``) into lowercase words."""
    words: set[str] = set()
    for key in keys:
        words.update(_WORD_RE.findall(_CAMEL_RE.sub(" ", key).lower()))
        words.add(re.sub(r"[^a-z]", "", key.lower()))
    words.discard("")
    return KeyContext(frozenset(words))


@dataclass(frozen=True, slots=True)
class Window:
    """Words around a candidate: ``before`` nearest-last, ``after`` nearest-first."""

    before: list[str]
    after: list[str]

    def near_negative(self) -> bool:
        near = self.before[-NEAR_WORDS:] + self.after[:NEAR_WORDS]
        return any(w in NEGATIVE_WORDS for w in near)

    def _all(self) -> list[str]:
        return self.before + self.after

    def phone(self) -> bool:
        return any(w in PHONE_WORDS for w in self._all())

    def ssn(self) -> bool:
        words = self._all()
        if any(w in SSN_WORDS for w in words):
            return True
        return "social" in words and "security" in words

    def aadhaar(self) -> bool:
        return any(w in AADHAAR_WORDS for w in self._all())


def window(text: str, start: int, end: int, lo: int = 0, hi: int | None = None) -> Window:
    """The words just before ``start`` and after ``end``, on the same line.

    Replacement tokens, e-mail addresses and digit runs are neutralised before words are
    taken, so a neighbour looks the same whether or not it has been scrubbed yet: the
    verdict on a number never depends on what happened around it (idempotence). At most
    ``RAW_SPAN`` characters are looked at on each side; only words count. The window never
    leaves ``text[lo:hi]`` (the JSON string holding the candidate).
    """
    if hi is None:
        hi = len(text)
    b0 = max(lo, start - RAW_SPAN)
    a1 = min(hi, end + RAW_SPAN)
    # a replacement token cut by an edge of the window is left out whole (its type name is no word)
    if b0 > lo:
        for m in _TOKEN_RE.finditer(text, max(lo, b0 - _TOKEN_MAX), min(start, b0 + _TOKEN_MAX)):
            if m.start() < b0 < m.end():
                b0 = m.end()
    if a1 < hi:
        for m in _TOKEN_RE.finditer(text, max(end, a1 - _TOKEN_MAX), min(hi, a1 + _TOKEN_MAX)):
            if m.start() < a1 < m.end():
                a1 = m.start()
    before = text[b0:start]
    after = text[end:a1]
    # a context window never crosses a line (one chat turn / log line)
    nl = before.rfind("\n")
    if nl >= 0:
        before = before[nl + 1:]
    nl = after.find("\n")
    if nl >= 0:
        after = after[:nl]
    if "\\n" in before:
        before = before[before.rfind("\\n") + 2:]
    if "\\n" in after:
        after = after[:after.find("\\n")]
    # "\t" and friends when the text is raw JSON: drop the escape letter
    if "\\" in before:
        before = before.replace("\\t", " ").replace("\\r", " ")
    if "\\" in after:
        after = after.replace("\\t", " ").replace("\\r", " ")
    b = _WORD_RE.findall(_NEUTRAL_RE.sub(" ", before).lower())[-BEFORE_WORDS:]
    a = _WORD_RE.findall(_NEUTRAL_RE.sub(" ", after).lower())[:AFTER_WORDS]
    return Window(b, a)
