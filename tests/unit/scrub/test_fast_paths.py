"""The fast candidate search finds exactly what the plain REGION loop found.

``detect`` and ``Scrubber._doc_edits`` skip the digit runs that ``region_ok`` always refuses inside
one C-level search (``FAST_REGION`` / ``FAST_REGION_JSON``).  The plain loop they replaced is kept
here as the reference: on random text and JSON, spans and scrubbed output must be the same.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from swarm.scrub import Scrubber, detect
from swarm.scrub import detectors as d
from swarm.scrub import scrubber as sc
from swarm.scrub.context import NO_KEY, KeyContext, key_words

from .helpers import AADHAAR, KEY, VISA


def reference_detect(text: str, key: KeyContext = NO_KEY, lo: int = 0, hi: int | None = None,
                     raw_json: bool = False) -> list[d.Span]:
    """``detect`` as it was before the fast search: one REGION match and one region_ok() per step."""
    if hi is None:
        hi = len(text)
    out: list[d.Span] = []
    if text.find("@", lo, hi) >= 0 or text.find("%40", lo, hi) >= 0:
        d._email_spans(text, lo, hi, out)
    pos = lo
    while True:
        r = d.REGION.search(text, pos, hi)
        if r is None:
            break
        rs, re_ = r.span()
        if not d.region_ok(text, rs, lo, raw_json):
            lead = d._LEAD.match(text, rs, re_)
            pos = max(lead.end() if lead else rs, rs + 1)
            continue
        if d.hopeless(text, rs, re_):
            pos = re_
            continue
        p = rs
        while p < re_:
            m = d._CLUSTER.search(text, p, re_)
            if m is None:
                break
            d._cluster_spans(text, m, key, out, lo, hi)
            p = m.end() + 1
        pos = re_
    if len(out) > 1:
        out.sort(key=lambda s: (s.start, -s.end))
        merged: list[d.Span] = []
        for s in out:
            if merged and s.start < merged[-1].end:
                continue
            merged.append(s)
        out = merged
    return out


@contextmanager
def plain_region_search() -> Iterator[None]:
    """Make the scrubber's JSON loop the loop as it was for the duration: plain REGION, full region_ok()."""
    saved = sc.FAST_REGION_JSON, sc.after_number
    sc.FAST_REGION_JSON = d.REGION
    sc.after_number = lambda text, i, lo=0: not d.region_ok(text, i, lo, True)
    try:
        yield
    finally:
        sc.FAST_REGION_JSON, sc.after_number = saved


# digits (ASCII and Devanagari), the separators and leads the regions are made of, word characters
# that glue, and what JSON text holds around them
ALPHABET = "0123456789" * 3 + "\u0966\u0967\u096f" + " .-()%+_xXnrtT2B@\\\"\n:,"
PIECES = ["1749153715160", "1749153715", "2026-04-15", "2026-04-15T09:30", "0.9876543210", "12.5",
          "98765 43210", "+91 98765 43210", "%2B91%2098765%2043210", "(415) 555-2671", "536-22-4111",
          "536224111", VISA, AADHAAR, "x9876543210", "\\n9876543210", "+(98765 43210", "%4098765432",
          "\u096b(98765 43210", "v1.2345678", "phone", "ssn", "a.b@ex.com"]
noisy = st.lists(st.one_of(st.text(alphabet=ALPHABET, max_size=16), st.sampled_from(PIECES)),
                 max_size=12).map("".join)
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(noisy, st.booleans())
@example("x\u096b(98765 43210", False)
@example("a+(98765 43210 call", False)
@example("x12 98765 43210 phone", False)
def test_detect_same_as_plain_loop(text: str, raw_json: bool) -> None:
    assert detect(text, raw_json=raw_json) == reference_detect(text, raw_json=raw_json)
    key = key_words("phone")
    assert detect(text, key) == reference_detect(text, key)


@SETTINGS
@given(noisy, st.integers(0, 8), st.integers(0, 8))
def test_detect_slice_same_as_plain_loop(text: str, cut_lo: int, cut_hi: int) -> None:
    """On a slice (a raw JSON string without escapes), whatever stands around it."""
    lo = min(cut_lo, len(text))
    hi = max(lo, len(text) - cut_hi)
    assert detect(text, NO_KEY, lo, hi) == reference_detect(text, NO_KEY, lo, hi)
    quoted = f'"{text[lo:hi]}"'
    if '"' not in text[lo:hi]:
        assert detect(quoted, NO_KEY, 1, len(quoted) - 1) == reference_detect(quoted, NO_KEY, 1, len(quoted) - 1)


json_values = st.recursive(
    st.one_of(st.none(), st.integers(), st.sampled_from(PIECES), noisy),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.sampled_from(["phone", "ssn", "at", "count", "msg", "args"]), kids, max_size=4),
    ),
    max_leaves=10,
)


@SETTINGS
@given(json_values, st.sampled_from([None, 2]), st.booleans(), st.booleans())
def test_json_scrub_same_as_plain_loop(obj: object, indent: int | None, ascii_only: bool, nest: bool) -> None:
    if nest:
        obj = {"arguments": json.dumps(obj, ensure_ascii=ascii_only)}
    text = json.dumps(obj, indent=indent, ensure_ascii=ascii_only)
    new = Scrubber(KEY)
    got = new.scrub_json(text)
    old = Scrubber(KEY)
    with plain_region_search():
        want = old.scrub_json(text)
    assert got == want
    assert new.report.to_dict() == old.report.to_dict()


@SETTINGS
@given(noisy)
@example("x1234567 1749153715160 (415) 555-2671 2026-04-15T1 a\\n98765 43210 \\n98765 43210")
def test_fast_patterns_are_region_less_refused_starts(text: str) -> None:
    """At every position: a fast match is the REGION match there, and exists unless region_ok() refuses."""
    for i in range(len(text)):
        plain = d.REGION.match(text, i)
        for fast, raw_json in ((d.FAST_REGION, False), (d.FAST_REGION_JSON, True)):
            m = fast.match(text, i)
            if plain is None:
                assert m is None
                continue
            prev = text[i - 1] if i else ""
            glued = d._word_char(prev) if prev else False
            if raw_json and prev in ("n", "r", "t") and i >= 2 and text[i - 2] == "\\":
                glued = False
            refused = glued or d._EXCLUDED.match(text, i) is not None
            assert (m is None) == refused
            assert m is None or m.span() == plain.span()
            if refused:
                assert not d.region_ok(text, i, 0, raw_json)
