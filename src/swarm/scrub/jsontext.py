"""Raw-text helpers for JSON documents: locate strings and paths without re-serialising.

The scrubber edits JSON *as text*: it finds which string (or number) token a
candidate position falls in, decodes just that token, and writes the redacted
value back into the same bytes.  Everything outside the edited tokens is kept
byte for byte.

* :class:`Walker` moves forward through a document that is known to be valid
  JSON, stopping only at brackets (strings and scalars are skipped by one C-level
  regex match), so it can answer "which string contains offset *c*, and what is
  its normalized path" for increasing offsets in amortized linear time.
* :func:`reencode` writes a changed string back in the escaping style of the
  original token (``ensure_ascii`` on or off), falling back to an exact
  offset map of the escapes when the original used another style.
* :data:`SPLIT_NUM_RE` / :data:`SPLIT_PHONE_RE` find values cut over sibling
  fields (``{"part1": "4614", "part2": ...}``, ``["8707", "8361", "0488"]``,
  ``{"country_code": "+44", "number": "20 7946 0958"}``).
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import re
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

__all__ = [
    "MEMBER_RE",
    "NUMBER_RE",
    "SPLIT_NUM_RE",
    "SPLIT_PHONE_RE",
    "Edit",
    "Walker",
    "apply_edits",
    "decode_string",
    "dump_string",
    "is_json",
    "key_before",
    "reencode",
]

Edit = tuple[int, int, str]

_WS = re.compile(r"[ \t\n\r]*")
# the C string and value scanners behind json.loads (not in the type stubs)
scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_SCAN_ONCE: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def is_json(text: str) -> bool:
    """True exactly when ``json.loads(text)`` succeeds (same C scanner, without its Python wrapper)."""
    if text.startswith("\ufeff"):
        return False
    try:
        end = _SCAN_ONCE(text, _WS.match(text).end())[1]  # type: ignore[union-attr]
    except (StopIteration, ValueError):
        return False
    return _WS.match(text, end).end() == len(text)  # type: ignore[union-attr]


def decode_string(text: str, start: int) -> str:
    """The value of the JSON string token whose opening quote is at ``start`` (``json.loads`` of it)."""
    return scanstring(text, start + 1, True)[0]


def dump_string(value: str, ensure_ascii: bool = True) -> str:
    """``json.dumps(value, ensure_ascii=...)`` for a ``str`` (the C encoder, no encoder object)."""
    return encode_basestring_ascii(value) if ensure_ascii else encode_basestring(value)

_SKIP = re.compile(r'(?:[^"{}\[\]]++|"(?:[^"\\]++|\\.)*+")*+')
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPE_PIECE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.|[^\\]+"
)
NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

_KEYP = r'(?:"(?:[^"\\]|\\.)*"\s*:\s*)?'
_PART = r'"[0-9\u0966-\u096f]{2,8}"'
SPLIT_NUM_RE = re.compile(rf"{_KEYP}{_PART}(?:\s*,\s*{_KEYP}{_PART}){{1,5}}")
MEMBER_RE = re.compile(r'(?:"((?:[^"\\]|\\.)*)"\s*:\s*)?"([0-9\u0966-\u096f]{2,8})"')

_CC_KEY = (
    r"(?:country_?code|countrycode|cc|dial_?code|dialling_?code|calling_?code|isd(?:_?code)?"
    r"|country_?calling_?code|phone_?cc|code|prefix)"
)
_NUM_KEY = (
    r"(?:number|national_?number|phone|phone_?number|mobile|subscriber(?:_?number)?"
    r"|local_?number|num|msisdn|line)"
)
_CC_VAL = r'"((?:\+|00)?[0-9]{1,4})"'
_NUM_VAL = r'"([0-9(][0-9 ().\-]{4,18}[0-9])"'
SPLIT_PHONE_RE = re.compile(
    rf'"{_CC_KEY}"\s*:\s*{_CC_VAL}\s*,\s*"{_NUM_KEY}"\s*:\s*{_NUM_VAL}'
    rf'|"{_NUM_KEY}"\s*:\s*{_NUM_VAL}\s*,\s*"{_CC_KEY}"\s*:\s*{_CC_VAL}',
    re.IGNORECASE,
)


def key_before(text: str, pos: int) -> str | None:
    """The member key whose value starts at ``pos`` (``"key": <pos>``), else None."""
    j = pos - 1
    while j >= 0 and text[j] in " \t\r\n":
        j -= 1
    if j < 0 or text[j] != ":":
        return None
    j -= 1
    while j >= 0 and text[j] in " \t\r\n":
        j -= 1
    if j < 0 or text[j] != '"':
        return None
    k = text.rfind('"', 0, j)
    while k > 0:
        b = k - 1
        while b >= 0 and text[b] == "\\":
            b -= 1
        if (k - 1 - b) % 2 == 0:
            break
        k = text.rfind('"', 0, k)
    if k < 0:
        return None
    raw = text[k + 1:j]
    if "\\" in raw:
        try:
            val = json.loads(text[k:j + 1])
        except ValueError:
            return raw
        return val if isinstance(val, str) else raw
    return raw


_COMPONENTS: dict[str, str] = {}


def _component(key: str) -> str:
    comp = _COMPONENTS.get(key)
    if comp is None:
        comp = "." + key if _IDENT.fullmatch(key) else "[" + dump_string(key, False) + "]"
        if len(_COMPONENTS) < 4096:
            _COMPONENTS[key] = comp
    return comp


class Walker:
    """Forward-only structural cursor over a valid JSON document."""

    __slots__ = ("base", "keys", "pos", "stack", "text", "value")

    def __init__(self, text: str, base: str = "$") -> None:
        self.text = text
        self.base = base
        self.pos = 0
        self.stack: list[str] = []   # "{" or "[" per open container
        # path component of each open container; its bracket's offset until first needed
        self.keys: list[str | int] = []
        self.value: str | None = None  # decoded value of the string token :meth:`advance` last returned

    def advance(self, c: int) -> tuple[int, int] | None:
        """Move to offset ``c`` (>= current position).

        Returns ``(start, end)`` of the string token (quotes included) containing
        ``c``, or None if ``c`` is outside every string.  The cursor stops at the
        string's opening quote; callers set :attr:`pos` past it when done.
        :attr:`value` is then that string's decoded value.
        """
        text = self.text
        stack = self.stack
        keys = self.keys
        skip = _SKIP.match
        pos = self.pos
        while True:
            m = skip(text, pos, c)
            p = m.end() if m else pos
            if p >= c:
                self.pos = p
                return None
            ch = text[p]
            if ch == '"':
                self.pos = p
                # the C string scanner finds the end and decodes in one go (the value is kept for
                # the caller); a document that is not valid JSON falls back to the regex
                try:
                    self.value, end = scanstring(text, p + 1, True)
                except ValueError:
                    self.value = None
                    m2 = _STRING.match(text, p)
                    end = m2.end() if m2 else len(text)
                return (p, end)
            if ch in "{[":
                stack.append(ch)
                keys.append(p)
            elif stack:
                stack.pop()
                keys.pop()
            pos = p + 1

    def _comp(self, i: int) -> str:
        """Path component of open container ``i`` (computed once, on first use)."""
        comp = self.keys[i]
        if isinstance(comp, str):
            return comp
        if i == 0:
            s = ""
        elif self.stack[i - 1] == "[":
            s = "[*]"
        else:
            k = key_before(self.text, comp)
            s = _component(k) if k is not None else ".*"
        self.keys[i] = s
        return s

    def container_path(self) -> str:
        """Normalized path of the innermost open container."""
        return self.base + "".join([self._comp(i) for i in range(len(self.keys))])

    def parent_key(self) -> str | None:
        """Key of the member holding the innermost open container, if any."""
        if self.keys:
            last = self._comp(len(self.keys) - 1)
            if last.startswith("."):
                return last[1:]
        return None

    def value_path(self, start: int, key: str | None) -> str:
        """Path of the value starting at ``start`` whose member key is ``key``."""
        if self.stack and self.stack[-1] == "{":
            return self.container_path() + (_component(key) if key is not None else ".*")
        if self.stack:
            return self.container_path() + "[*]"
        return self.base

    def value_info(self, start: int) -> tuple[str, str | None, str | None]:
        """(path, own key, parent key) of the scalar value starting at ``start``."""
        parent = self.parent_key()
        if self.stack and self.stack[-1] == "{":
            k = key_before(self.text, start)
            if k is not None:
                return self.container_path() + _component(k), k, parent
            return self.container_path() + ".*", None, parent
        if self.stack:
            return self.container_path() + "[*]", None, parent
        return self.base, None, None

    def is_key(self, end: int) -> bool:
        """True if the string token ending at ``end`` is an object key."""
        text = self.text
        n = len(text)
        j = end
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j < n and text[j] == ":"


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """Apply sorted, non-overlapping ``(start, end, replacement)`` edits."""
    if not edits:
        return text
    out: list[str] = []
    pos = 0
    for s, e, rep in edits:
        out.append(text[pos:s])
        out.append(rep)
        pos = e
    out.append(text[pos:])
    return "".join(out)


def reencode(raw: str, decoded: str, edits: Sequence[Edit]) -> str:
    """The raw content of a JSON string after applying ``edits`` (in decoded offsets).

    ``raw`` is the original token content between the quotes and ``decoded`` its
    value.  Bytes outside the edits are preserved.
    """
    new = apply_edits(decoded, edits)
    for ascii_only in (False, True):
        if dump_string(decoded, ascii_only)[1:-1] == raw:
            return dump_string(new, ascii_only)[1:-1]
    # exact map from decoded offsets to raw offsets
    dpos: list[int] = []
    rpos: list[int] = []
    d = 0
    for m in _ESCAPE_PIECE.finditer(raw):
        piece = m.group()
        dpos.append(d)
        rpos.append(m.start())
        if piece.startswith("\\"):
            d += 1
        else:
            # a literal run: record every offset lazily via the run start
            d += len(piece)
    dpos.append(d)
    rpos.append(len(raw))

    def to_raw(x: int) -> int:
        i = bisect.bisect_right(dpos, x) - 1
        base_d, base_r = dpos[i], rpos[i]
        if x == base_d:
            return base_r
        # inside a literal run (escapes are one decoded char and never split)
        return base_r + (x - base_d)

    raw_edits = [(to_raw(s), to_raw(e), dump_string(rep, False)[1:-1]) for s, e, rep in edits]
    return apply_edits(raw, raw_edits)
