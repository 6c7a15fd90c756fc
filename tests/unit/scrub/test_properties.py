"""Property tests: idempotence, JSON validity, locality of changes, determinism."""
from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarm.scrub import TOKEN_RE, Scrubber, detect

from .helpers import AADHAAR, AMEX, KEY, MC, VISA

PII = ["a.b@ex.com", "First.Last+x@mail.cs.uni.edu", "+91 98765 43210", "(415) 555-2671", "536-22-4111",
       VISA, f"{MC[:4]} {MC[4:8]} {MC[8:12]} {MC[12:]}", AMEX, AADHAAR,
       f"{AADHAAR[:4]}-{AADHAAR[4:8]}-{AADHAAR[8:]}", "09876543210", "98765 43210", "+44 20 7946 0958"]
NOISE = ["seed=8763104394", "call", "phone", "SSN", "bytes", "2026-04-15T09:30:00Z", "1749153715160",
         "v2.14.3", "0.9876543210", "react@18.2.0", "uuid 8c36a6bd-c933-473a-9445-f22be0e64d5b", "é", "नंबर",
         "\n", "\"", "\\", "9876543210", "536224111", "(", ")", "-", "+", "%40", "%20", "4242", "x"]

piece = st.one_of(st.sampled_from(PII), st.sampled_from(NOISE), st.text(max_size=12))
texts = st.lists(piece, max_size=14).map(" ".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(texts)
def test_text_idempotent(text: str) -> None:
    s = Scrubber(KEY)
    once = s.scrub_text(text)
    assert s.scrub_text(once) == once


@SETTINGS
@given(texts)
def test_only_detected_spans_change(text: str) -> None:
    s = Scrubber(KEY)
    spans = detect(text)
    out = s.scrub_text(text)
    # rebuild: everything outside the spans is verbatim, every span became a token
    pos, parts = 0, []
    for sp in spans:
        parts.append(re.escape(text[pos:sp.start]))
        parts.append(TOKEN_RE.pattern)
        pos = sp.end
    parts.append(re.escape(text[pos:]))
    assert re.fullmatch("".join(parts), out, re.S)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(PII), texts),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.sampled_from(["phone", "ssn", "email", "content", "count", "seed", "args", "x"]),
                        kids, max_size=4),
    ),
    max_leaves=12,
)


@SETTINGS
@given(json_values, st.sampled_from([None, 2]), st.booleans(), st.booleans())
def test_json_stays_valid_and_idempotent(obj: object, indent: int | None, ascii_only: bool, nest: bool) -> None:
    s = Scrubber(KEY)
    if nest:
        obj = {"arguments": json.dumps(obj, ensure_ascii=ascii_only)}
    text = json.dumps(obj, indent=indent, ensure_ascii=ascii_only)
    out = s.scrub_json(text)
    json.loads(out)
    assert s.scrub_json(out) == out
    # nothing outside string/number values changed: same structure and keys
    assert _shape(json.loads(out)) == _shape(json.loads(text))


def _shape(v: object) -> object:
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    return "scalar"


@SETTINGS
@given(texts)
def test_tokens_deterministic_per_key(text: str) -> None:
    a1 = Scrubber(KEY).scrub_text(text)
    a2 = Scrubber(KEY).scrub_text(text)
    assert a1 == a2
    b = Scrubber(b"another key".ljust(32, b"!")).scrub_text(text)
    assert len(TOKEN_RE.findall(a1)) == len(TOKEN_RE.findall(b))


def test_different_keys_give_different_tokens() -> None:
    a = Scrubber(KEY).scrub_text("a.b@ex.com")
    b = Scrubber(b"another key".ljust(32, b"!")).scrub_text("a.b@ex.com")
    assert a != b and TOKEN_RE.fullmatch(a) and TOKEN_RE.fullmatch(b)
    assert Scrubber(KEY).scrub_text("A.B@EX.COM") == a
