"""Find PII spans in one piece of decoded text (a chat message, a log, a JSON string value).

:func:`detect` is the only entry point.  It returns non-overlapping
:class:`Span` objects sorted by position; it never changes the text.  It can
work on a slice ``text[lo:hi]`` without copying it (used on raw JSON strings
that contain no escapes).

How it works:

* **Digit clusters.**  ``REGION`` (a charset-first regex without look-arounds,
  so the C engine skips ahead fast) finds runs of 7+ characters made of digits
  (ASCII or Devanagari) and separators.  A run may not continue a word or a
  dotted/dashed number, and shapes that can never be PII (epoch seconds and
  milliseconds, floats, ISO dates) are dropped by one anchored match.  Inside a
  run, ``_CLUSTER`` takes digit groups joined by one separator (space, ``-``,
  ``.``, ``%20``, a bracket), optionally led by ``+``/``%2B``/``(``.  Each cluster is
  classified by shape (group lengths and separators) and validated: PAN by
  issuer prefix + Luhn, AADHAAR by Verhoeff, SSN by SSA rules, PHONE by
  numbering plan.  Bare runs that are ambiguous (9, 10 or 12 digits) also need
  context (:mod:`swarm.scrub.context`).  A cluster that does not classify as a
  whole is retried on sub-runs split at spaces (``call 98765 43210 2 times``).
* **Emails.**  Anchored on ``@`` or ``%40``; the local part is read backwards and
  the domain forwards; the top-level domain must be alphabetic, which rules out
  npm specs (``react@18.2.0``) and image digests (``img@sha256:...``).

Already-masked values (``**** 4242``, ``***-**-6789``) and replacement tokens
never contain 7 consecutive digit characters, so they are not candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from swarm.scrub import checksums as cs
from swarm.scrub.context import NO_KEY, KeyContext, Window, window

__all__ = [
    "FAST_REGION",
    "FAST_REGION_JSON",
    "LEAD_CHARS",
    "REGION",
    "TYPES",
    "Span",
    "after_number",
    "detect",
    "hopeless",
    "region_ok",
    "skip_lead",
]

TYPES = ("PAN", "AADHAAR", "SSN", "EMAIL", "PHONE")

_D = "0-9\u0966-\u096f"
_SEP = r"(?:\)?(?:[ .\-]|%20)\(?|\))"
_BODY = rf"[{_D} .\-()%]"
# A cluster: optional +/%2B/( lead, digit groups joined by one separator.
_CLUSTER = re.compile(rf"(?:\+|%2[Bb])?\(?[{_D}]+(?:{_SEP}[{_D}]+)*")
_FIRST = rf"[+%({_D}]"
_REGION_TAIL = rf"(?:(?<=%)2[Bb])?{_BODY}{{6,}}"
REGION = re.compile(_FIRST + _REGION_TAIL)
# Starts that can never begin PII: epoch seconds/milliseconds (10/13 digits
# from 1), floats (0.98, 12.5, 1234.5), ISO dates (2026-04-15T.., "2026-04-15").
_EXCLUDED = re.compile(
    r"1[0-9]{9}(?:[0-9]{3})?(?![0-9]|[ .\-][0-9])"
    r"|[0-9]{1,2}\.[0-9]|[0-9]{4,}\.[0-9]"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T\" ]|$)"
)
# _EXCLUDED seen from just after its first character, which must be an ASCII digit
_EXCLUDED_AFTER_FIRST = (
    r"(?<=[0-9])(?:(?<=1)[0-9]{9}(?:[0-9]{3})?(?![0-9]|[ .\-][0-9])"
    r"|[0-9]?\.[0-9]|[0-9]{3,}\.[0-9]"
    r"|[0-9]{3}-[0-9]{2}-[0-9]{2}(?:[T\" ]|$))"
)
# REGION less the starts that region_ok() always refuses (right after an ASCII letter, digit or "_";
# an excluded shape), so that the C engine passes them by instead of a Python round trip each.  The
# checks sit after the first character, so the engine still skips ahead on the character set.  It
# is searched without an end bound (its look-arounds then see what region_ok sees); detect() uses it
# only where a REGION match cannot run past its end bound.  FAST_REGION_JSON also lets a
# "\n"/"\r"/"\t" escape stand before the start, as region_ok(raw_json=True) does.
FAST_REGION = re.compile(rf"{_FIRST}(?<![A-Za-z0-9_]{_FIRST})(?!{_EXCLUDED_AFTER_FIRST}){_REGION_TAIL}")
FAST_REGION_JSON = re.compile(
    rf"{_FIRST}(?:(?<![A-Za-z0-9_]{_FIRST})|(?<=\\[nrt]{_FIRST}))(?!{_EXCLUDED_AFTER_FIRST}){_REGION_TAIL}")
# What _LEAD skips after a refused start: a match right after one of these may be one that the
# plain REGION loop never looks at (it resumes after the whole lead), so it is re-found the plain way.
LEAD_CHARS = frozenset("+%(\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f")
_GROUP = re.compile(rf"[{_D}]+")
_SPLIT_GROUPS = re.compile(rf"([{_D}]+)")
_LEAD = re.compile(rf"[+%(]*[{_D}]*")
_AT = re.compile(r"@|%40")
_LOCAL_TAIL = re.compile(r"(?:[A-Za-z0-9_+\-]|%2[Bb]|\.(?!\.))+$")
_LOCAL_RUN = re.compile(r"[A-Za-z0-9_+\-.%]*")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

# Country calling codes whose national number length we know.
_CC_LEN: dict[str, tuple[int, int]] = {
    "1": (10, 10), "44": (9, 10), "49": (6, 13), "61": (9, 9), "65": (8, 8),
    "91": (10, 10), "971": (8, 9), "7": (10, 10), "33": (9, 9), "81": (9, 10), "86": (10, 11),
    "34": (9, 9), "39": (8, 11), "92": (9, 10), "880": (9, 10), "977": (8, 10), "94": (9, 9),
    "966": (8, 9), "974": (8, 8), "60": (8, 10), "62": (8, 12), "63": (9, 10), "64": (8, 10),
    "27": (9, 9), "353": (8, 9), "31": (9, 9), "41": (9, 9), "46": (7, 10), "55": (10, 11),
}


@dataclass(frozen=True, slots=True)
class Span:
    """A PII occurrence: ``text[start:end]`` is replaced; ``norm`` feeds the token hash."""

    start: int
    end: int
    type: str
    norm: str


def _word_char(c: str) -> bool:
    """An ASCII letter, digit or ``_``: a digit run glued to one is not a candidate."""
    return c.isascii() and (c.isalnum() or c == "_")


def after_number(text: str, i: int, lo: int = 0) -> bool:
    """Does a run at ``i`` continue a dotted/dashed number (``1.2345678``)?

    The one refusal of :func:`region_ok` that a FAST_REGION match has not been checked for.
    """
    return i - 2 >= lo and text[i - 1] in ".-" and text[i - 2].isdigit()


def skip_lead(text: str, i: int) -> int:
    """Position after the leading digit group at ``i`` (where a glued run may resume)."""
    m = _LEAD.match(text, i)
    return max(m.end() if m else i, i + 1)


def region_ok(text: str, i: int, lo: int = 0, raw_json: bool = False) -> bool:
    """May a digit cluster start at ``i``?  Not inside a word or number, not an excluded shape.

    With ``raw_json`` a preceding ``\\n``/``\\t``/``\\r`` escape counts as a separator.
    """
    if i > lo:
        c = text[i - 1]
        if c.isascii() and (c.isalnum() or c == "_"):
            if not (raw_json and c in "nrt" and i - 2 >= lo and text[i - 2] == "\\"):
                return False
        elif c in ".-" and i - 2 >= lo and text[i - 2].isdigit():
            return False
    return _EXCLUDED.match(text, i) is None


def hopeless(text: str, i: int, j: int) -> bool:
    """True if the region ``text[i:j]`` is one bare digit run that no rule can accept.

    Context-free, so callers may skip such a region before looking up its context.
    """
    m = _CLUSTER.match(text, i, j)
    if m is None:
        return False
    g = m.group()
    if not (g.isascii() and g.isdigit()):
        return False
    e = m.end()
    if e < j and any(ch.isdigit() for ch in text[e:j]):
        return False
    n = len(g)
    if n >= 13:
        return n > 19 or (not cs.pan_ok(g) and not g.startswith("00"))
    if n == 12:
        return not cs.aadhaar_ok(g) and not g.startswith("91")
    if n == 11:
        return g[0] not in "01"
    if n == 10:
        return g[0] in "01"
    if n == 9:
        return not cs.ssn_ok(g)
    return True


def _sep_kind(sep: str) -> str:
    if "(" in sep or ")" in sep:
        return "P"
    if not sep.strip():
        return " "
    return sep


# _sep_kind of the common separators
_SEP_KINDS = {" ": " ", "   ": " ", "-": "-", ".": ".", ")": "P", ") ": "P", " (": "P", ")-": "P", "(": "P"}


class _Ctx:
    """Lazily computed context for one candidate (window words cost a regex)."""

    __slots__ = ("_whole", "_win", "end", "hi", "key", "lo", "start", "text")

    def __init__(self, text: str, start: int, end: int, key: KeyContext, lo: int, hi: int) -> None:
        self.text = text
        self.start = start
        self.end = end
        self.key = key
        self.lo = lo
        self.hi = hi
        self._whole: bool | None = None
        self._win: Window | None = None

    @property
    def whole(self) -> bool:
        """True if the candidate is the whole value (only whitespace around it)."""
        w = self._whole
        if w is None:
            text, start, end, lo, hi = self.text, self.start, self.end, self.lo, self.hi
            w = self._whole = (start == lo or (start - lo < 64 and text[lo:start].isspace())) and (
                end == hi or (hi - end < 64 and text[end:hi].isspace()))
        return w

    @property
    def win(self) -> Window | None:
        if self.whole:
            return None
        if self._win is None:
            self._win = window(self.text, self.start, self.end, self.lo, self.hi)
        return self._win

    def negative(self) -> bool:
        win = self.win
        if win is None:
            return self.key.negative
        return win.near_negative() or (self.key.negative and not self.key.phone)

    def phone(self) -> bool:
        if self.key.phone:
            return True
        win = self.win
        return win is not None and win.phone()

    def ssn(self) -> bool:
        if self.key.ssn:
            return True
        win = self.win
        return win is not None and win.ssn()

    def aadhaar(self) -> bool:
        if self.key.aadhaar:
            return True
        win = self.win
        return win is not None and win.aadhaar()


def _phone_cc(prefix_digits: str, national: str) -> bool:
    """Does ``national`` fit the numbering plan of country code ``prefix_digits``?"""
    if not national or national[0] == "0":
        return False
    lens = _CC_LEN.get(prefix_digits)
    if lens is None:
        return 1 <= len(prefix_digits) <= 3 and 7 <= len(national) and len(prefix_digits) + len(national) <= 15
    if not lens[0] <= len(national) <= lens[1]:
        return False
    if prefix_digits == "1":
        return cs.nanp_ok(national)
    if prefix_digits == "65":
        return national[0] in "3689"
    return True


def _split_compact_cc(digits: str) -> tuple[str, str] | None:
    """Split ``919876543210`` into (``91``, ``9876543210``) using the known plans."""
    for n in (3, 2, 1):
        cc = digits[:n]
        if cc in _CC_LEN and _phone_cc(cc, digits[n:]):
            return cc, digits[n:]
    return None


# A classification result: (type, index of first group replaced, norm)
_Result = tuple[str, int, str]


def _classify(
    groups: list[str], seps: list[str], prefix: str, ctx: _Ctx
) -> _Result | None:
    """Classify one run of digit groups; ``prefix`` is "+", "(" or ""."""
    ng = len(groups)
    if prefix == "+":
        digits = "".join(groups)
        n = len(digits)
        if ng > 1 and len(groups[0]) <= 3:
            cc, nat = groups[0], "".join(groups[1:])
            if _phone_cc(cc, nat):
                return ("PHONE", 1, nat)
            return None
        split = _split_compact_cc(digits)
        if split is not None:
            return ("PHONE", 0, split[1])
        if ng == 1 and 9 <= n <= 15:
            return ("PHONE", 0, digits)
        return None

    if prefix == "(":
        # (415) 555-2671; anything else in brackets is classified without the bracket
        if ng == 3 and [len(g) for g in groups] == [3, 3, 4] and seps[0].startswith(")"):
            digits = "".join(groups)
            return ("PHONE", 0, digits) if cs.nanp_ok(digits) else None
        if seps and seps[0].startswith(")"):
            return None

    if ng == 1:
        return _classify_bare(groups[0], ctx)

    digits = "".join(groups)
    n = len(digits)
    kinds: set[str] = set()
    for sp in seps:
        kd = _SEP_KINDS.get(sp)
        if kd is None:
            kd = _sep_kind(sp)
        kinds.add(kd)
    uniform = len(kinds) <= 1
    kind = next(iter(kinds)) if kinds else ""

    lens = [len(g) for g in groups]

    # international prefix written as 00: 0091 98765 43210
    if groups[0].startswith("00") and 3 <= len(groups[0]) <= 5 and "." not in kinds:
        cc, nat = groups[0][2:], "".join(groups[1:])
        if cc in _CC_LEN and _phone_cc(cc, nat):
            return ("PHONE", 1, nat)

    if uniform and kind in (" ", "-") and 13 <= n <= 19:
        four = all(x == 4 for x in lens[:-1]) and 1 <= lens[-1] <= 4
        amex = lens in ([4, 6, 5], [4, 6, 4])
        if (four or amex) and cs.pan_ok(digits):
            return ("PAN", 0, digits)
        return None

    if lens == [4, 4, 4] and uniform and kind in (" ", "-"):
        if cs.aadhaar_ok(digits) and (ctx.aadhaar() or not ctx.negative()):
            return ("AADHAAR", 0, digits)
        return None

    if lens == [3, 2, 4] and uniform and kind in (" ", "-"):
        if cs.ssn_ok(digits) and (kind == "-" or ctx.ssn() or not ctx.negative()):
            return ("SSN", 0, digits)
        return None

    # North American: 415-555-2671, 415.555.2671, 415 555 2671, 1-415-555-2671
    if lens == [3, 3, 4] and (uniform or kinds == {"P", "-"}) and kind != "P":
        if cs.nanp_ok(digits):
            return ("PHONE", 0, digits)
        return None
    if lens == [1, 3, 3, 4] and groups[0] == "1" and uniform and kind in (" ", "-", "."):
        if cs.nanp_ok(digits[1:]):
            return ("PHONE", 1, digits[1:])
        return None
    if lens == [1, 3, 3, 4] and groups[0] == "1" and seps[1].startswith(")"):
        if cs.nanp_ok(digits[1:]):
            return ("PHONE", 1, digits[1:])
        return None

    # Indian mobile written 98765 43210 / 98765-43210
    if lens == [5, 5] and kind in (" ", "-") and digits[0] in "6789":
        if not ctx.negative():
            return ("PHONE", 0, digits)
        return None

    # trunk-prefixed national numbers: 09876543210, 011-23456789, 07911 123456, 020 7946 0958
    if n == 11 and digits[0] == "0" and digits[1] != "0" and ng <= 3 and kinds <= {" ", "-"}:
        if lens[0] <= 5 and not ctx.negative():
            return ("PHONE", 0, digits[1:])
        return None
    return None


def _classify_bare(digits: str, ctx: _Ctx) -> _Result | None:
    """One unseparated run of digits."""
    n = len(digits)
    if n >= 13:
        if n <= 19 and cs.pan_ok(digits):
            return ("PAN", 0, digits)
        if n == 13 and digits.startswith("00") and ctx.phone():
            split = _split_compact_cc(digits[2:])
            if split is not None:
                return ("PHONE", 0, split[1])
        return None
    if n == 12:
        if cs.aadhaar_ok(digits):
            if ctx.aadhaar() or not ctx.negative():
                return ("AADHAAR", 0, digits)
            return None
        if digits.startswith("91") and digits[2] in "6789" and ctx.phone() and not ctx.negative():
            return ("PHONE", 0, digits[2:])
        return None
    if n == 11:
        if digits[0] == "0" and digits[1] != "0" and not ctx.negative():
            # trunk 0 + 10-digit national number (09876543210)
            if digits[1] in "6789" or ctx.phone():
                return ("PHONE", 0, digits[1:])
        if digits[0] == "1" and cs.nanp_ok(digits[1:]) and ctx.phone() and not ctx.negative():
            return ("PHONE", 0, digits[1:])
        return None
    if n == 10:
        if digits[0] in "6789":
            if ctx.phone() and not ctx.negative():
                return ("PHONE", 0, digits)
        elif ctx.whole and ctx.key.phone and cs.nanp_ok(digits):
            return ("PHONE", 0, digits)
        return None
    if n == 9:
        if cs.ssn_ok(digits) and ctx.ssn() and not ctx.negative():
            return ("SSN", 0, digits)
        return None
    return None


def _cluster_spans(text: str, m: re.Match[str], key: KeyContext, out: list[Span], lo: int, hi: int) -> None:
    start, end = m.span()
    # digits right after a %XX escape belong to the escape (%2096985 is " 96985")
    skip = 2 if start - 1 >= lo and text[start - 1] == "%" else (
        1 if start - 2 >= lo and text[start - 2] == "%" else 0)
    if skip:
        m2 = _CLUSTER.match(text, start + skip, hi)
        if m2 is None:
            return
        m = m2
        start, end = m.span()
    if end - start < 7:
        return
    if start > lo:
        c = text[start - 1]
        if c.isascii() and (c.isalnum() or c == "_"):
            return
    if end < hi:
        c = text[end]
        if c.isascii() and (c.isalnum() or c == "_"):
            return
    raw = m.group()
    prefix = ""
    body_off = 0
    c0 = raw[0]
    if c0 == "+":
        prefix, body_off = "+", 1
    elif c0 == "%":
        prefix, body_off = "+", 3
    if raw[body_off] == "(":
        prefix = prefix or "("
        body_off += 1
    if "%" in raw:  # %20 separators, %2B plus: same length, so offsets hold
        raw = raw.replace("%20", "   ").replace("%2B", "  +").replace("%2b", "  +")
    # raw[body_off:] is digit groups joined by separators: ["", g1, sep1, g2, ..., gn, ""]
    parts = _SPLIT_GROUPS.split(raw[body_off:] if body_off else raw)
    groups = parts[1::2]
    ng = len(groups)
    if ng == 1:
        g = groups[0]
        if len(g) < 7:
            return
        if not g.isascii():
            g = g.translate(cs.DEVANAGARI_TO_ASCII)
        s1 = start + body_off if prefix == "(" else start
        res = _classify([g], [], prefix, _Ctx(text, s1, end, key, lo, hi))
        if res is not None:
            out.append(Span(s1, end, res[0], res[2]))
        return
    lens = [len(g) for g in groups]
    if sum(lens) < 7:
        return
    if not raw.isascii():
        groups = [cs.ascii_digits(g) for g in groups]
    seps = parts[2:-1:2]
    # the whole cluster first: when it classifies, no sub-run bookkeeping is needed
    res = _classify(groups, seps, prefix, _Ctx(text, start, end, key, lo, hi))
    if res is not None:
        typ, first, norm = res
        s_rep = start
        gsf = 0
        if first:
            gsf = body_off + sum(lens[:first]) + sum([len(sp) for sp in seps[:first]])
            s_rep = start + gsf
        if prefix == "(" and not (typ == "PHONE" and lens == [3, 3, 4]):
            s_rep = start + body_off
        if first and raw[gsf - 1] == "(":
            s_rep -= 1
        out.append(Span(s_rep, end, typ, norm))
        return
    # group k is raw[gs[k]:ge[k]]
    gs: list[int] = []
    ge: list[int] = []
    p = body_off
    for k in range(ng):
        gs.append(p)
        p += lens[k]
        ge.append(p)
        if k < ng - 1:
            p += len(seps[k])
    # whole cluster first, then sub-runs split at plain spaces, or at a space then "(" (a bracketed
    # area code starts a new number: "... 1749153715160 (415) 555-2671")
    cuts = [0] + [i + 1 for i, sp in enumerate(seps) if not sp.strip() or (sp[:1] == " " and sp.strip() == "(")] \
        + [ng]
    i_idx = 0
    ncuts = len(cuts)
    while i_idx < ncuts - 1:
        found = False
        a = cuts[i_idx]
        for j_idx in range(ncuts - 1, i_idx, -1):
            b = cuts[j_idx]
            if sum(lens[a:b]) < 7:
                break
            if a == 0 and b == ng:
                continue  # the whole cluster, tried above
            pre = prefix if a == 0 else ""
            s0 = start + (gs[a] if a else 0)
            if a != 0 and raw[gs[a] - 1] == "(":
                if seps[a - 1] != " (":
                    continue  # "(415)" cannot lose its bracket
                pre, s0 = "(", s0 - 1  # a sub-run that starts with its own bracket keeps it
            e0 = start + ge[b - 1]
            res = _classify(groups[a:b], seps[a:b - 1], pre, _Ctx(text, s0, e0, key, lo, hi))
            if res is None:
                continue
            typ, first, norm = res
            s_rep = start + gs[a + first] if first else s0
            if pre == "(" and not (typ == "PHONE" and lens[a:b] == [3, 3, 4]):
                s_rep = start + gs[a]
            if first and raw[gs[a + first] - 1] == "(":
                s_rep -= 1
            out.append(Span(s_rep, e0, typ, norm))
            found = True
            i_idx = j_idx
            break
        if not found:
            i_idx += 1


def _email_spans(text: str, lo: int, hi: int, out: list[Span]) -> None:
    for m in _AT.finditer(text, lo, hi):
        a, b = m.span()
        # the local part can only start inside the run of its characters that ends at the "@":
        # find that run (reversed, one anchored match) and search only there
        lo2 = max(lo, a - 64)
        k = _LOCAL_RUN.match(text[lo2:a][::-1]).end()  # type: ignore[union-attr]
        if not k:
            continue
        lm = _LOCAL_TAIL.search(text, a - k, a)
        if lm is None:
            continue
        ls = lm.start()
        local = lm.group()
        while local.startswith(".") or local.startswith("-"):
            local = local[1:]
            ls += 1
        if not local or local.endswith("."):
            continue
        dm = _DOMAIN.match(text, b, hi)
        if dm is None:
            continue
        if ls > lo:
            prev = text[ls - 1]
            if prev == "@" or (prev == "/" and text[max(lo, ls - 3):ls] == "://"):
                continue  # user@host inside a URL authority, or a second @
        if local.lower() == "git" and text[dm.end():dm.end() + 1] == ":":
            continue  # git@github.com:org/repo
        norm = (local.replace("%2B", "+").replace("%2b", "+") + "@" + dm.group()).lower()
        out.append(Span(ls, dm.end(), "EMAIL", norm))


def detect(text: str, key: KeyContext = NO_KEY, lo: int = 0, hi: int | None = None,
           raw_json: bool = False) -> list[Span]:
    """All PII spans in ``text[lo:hi]`` (offsets into ``text``), sorted and non-overlapping.

    ``key`` is the context of the JSON member holding the text (its key words),
    or :data:`~swarm.scrub.context.NO_KEY` for free text.  ``raw_json`` says the
    slice is the raw content of a JSON string (``\\n`` escapes are separators).
    """
    if hi is None:
        hi = len(text)
    out: list[Span] = []
    if text.find("@", lo, hi) >= 0 or text.find("%40", lo, hi) >= 0:
        _email_spans(text, lo, hi, out)
    search = REGION.search
    # FAST_REGION gives the same accepted starts as the plain loop, in one C-level search, when a
    # match cannot run past hi (hi ends the text or a JSON string) and the start at lo is not
    # judged on a character before lo that region_ok() would not look at
    fast_re = FAST_REGION_JSON if raw_json else FAST_REGION
    fast = fast_re.search if (hi == len(text) or text[hi] == '"') and (
        lo == 0 or not _word_char(text[lo - 1])) else None
    pos = lo
    while True:
        r = None
        if fast is not None:
            r = fast(text, pos)
            if r is None:
                break
            rs = r.start()
            if rs >= hi:
                break
            if rs > pos and text[rs - 1] in LEAD_CHARS:
                r = None  # possibly inside a lead the plain loop skips: take one plain step
        if r is None:
            r = search(text, pos, hi)
            if r is None:
                break
        rs, re_ = r.span()
        if (after_number(text, rs, lo) if r.re is fast_re else not region_ok(text, rs, lo, raw_json)):
            # a later group of the run may still start a cluster ("x12 98765 43210")
            lead = _LEAD.match(text, rs, re_)
            pos = max(lead.end() if lead else rs, rs + 1)
            continue
        if hopeless(text, rs, re_):
            pos = re_
            continue
        p = rs
        while p < re_:
            m = _CLUSTER.search(text, p, re_)
            if m is None:
                break
            _cluster_spans(text, m, key, out, lo, hi)
            p = m.end() + 1
        pos = re_
    if len(out) > 1:
        out.sort(key=lambda s: (s.start, -s.end))
        merged: list[Span] = []
        for s in out:
            if merged and s.start < merged[-1].end:
                continue  # overlaps an earlier (longer or earlier) span
            merged.append(s)
        out = merged
    return out
