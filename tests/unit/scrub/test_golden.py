"""Byte-exact golden outputs: performance work on the scrubber must not change a single byte.

The digests cover the JSONL output and the report of ``scrub_stream(..., "jsonl")``
(the CLI path) on the dev corpus and on 300 synthetic records (seed 7), with the
test key.  They were recorded before the speed-ups of scrub.VERSION 1; change
them only together with a deliberate change of detection or tokens (and a VERSION bump).
VERSION 3 re-recorded them for 64-bit tokens: with every token masked to its type,
the output and the report were byte-identical to VERSION 2's on the dev corpus and
3,000 synthetic records (seed 7), so only token text changed.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from swarm.scrub import Scrubber
from swarm.scrub.stream import scrub_stream

from .helpers import KEY
from .test_corpus import REPO, SHARED, _load

GOLDEN = {
    "dev": "5fdf2bad91b9e5254005b68dd99f16a22700a32ab2347fdfd043f9ede0952922",
    "synthetic": "0d7a4c9dc71994944fcd2e274650cf60003bd8e8f46a705de80c6e11f8fcbf95",
}


def _digest(records: list[dict[str, Any]]) -> str:
    payload = "".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in records)
    s = Scrubber(KEY)
    out = io.StringIO()
    scrub_stream(io.StringIO(payload), out, s, "jsonl")
    h = hashlib.sha256(out.getvalue().encode())
    h.update(json.dumps(s.report.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def test_golden_dev() -> None:
    path = SHARED / "corpus_dev.jsonl"
    assert path.exists(), f"missing {path}"
    recs = [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    assert _digest(recs) == GOLDEN["dev"]


def test_golden_synthetic() -> None:
    gen = _load(REPO / "bench" / "scrub_corpus.py", "scrub_corpus_golden")
    assert _digest(gen.generate(7, 300)) == GOLDEN["synthetic"]
