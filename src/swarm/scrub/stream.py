"""Streaming front-end: scrub a text stream into another.

``jsonl`` (and ``auto`` when the first non-blank line is a JSON value on its
own) is processed line by line in constant memory; ``json`` and ``text`` read
the whole document.
"""

from __future__ import annotations

import json
from typing import TextIO

from swarm.scrub.scrubber import FORMATS, Scrubber

__all__ = ["scrub_stream"]


def scrub_stream(inp: TextIO, out: TextIO, scrubber: Scrubber, fmt: str = "auto") -> None:
    """Read ``inp``, write the scrubbed text to ``out`` (format ``auto|text|json|jsonl``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if fmt in ("json", "text"):
        out.write(scrubber.scrub(inp.read(), fmt))
        return
    first: list[str] = []
    if fmt == "auto":
        for line in inp:
            first.append(line)
            if line.strip():
                break
        head = "".join(first)
        lone = first[-1] if first else ""
        try:
            json.loads(lone)
            is_lines = lone.strip()[:1] in ("{", "[")
        except ValueError:
            is_lines = False
        if not is_lines:
            out.write(scrubber.scrub(head + inp.read(), "auto"))
            return
    write = out.write
    line_fn = scrubber.scrub_line
    for line in first:
        write(line_fn(line))
    for line in inp:
        write(line_fn(line))
