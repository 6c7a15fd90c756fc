"""Byte-exact golden outputs: performance work on the scrubber must not change a single byte.

The digests cover the JSONL output and the report of ``scrub_stream(..., "jsonl")``
(the CLI path) on the dev corpus and on 300 synthetic records (seed 7), with the
test key.  They were recorded before the speed-ups of scrub.VERSION 1; change
them only together with a deliberate change of detection (and a VERSION bump).
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
    "dev": "a97b99c900faf645545356b3ad5764a538cca84e7365557f789f78af02592cbc",
    "synthetic": "af80e26408f1068bc2eefa45b0eecd589ca3ce9c040862b6284b49f7099f4dd1",
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
