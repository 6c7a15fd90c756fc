"""Baseline: Presidio's rule-based recognizers (no spaCy model, no NLP engine).

Uses the predefined pattern/rule recognizers for the five entity types and
replaces every result with ``<TYPE>``.  ``scrub(text)`` is the callable; run as a
script it speaks the evaluator's JSONL protocol on stdin/stdout.  Needs
presidio-analyzer (installed by bench/scrub.py into .venv-bench).
"""
from __future__ import annotations

import json
import sys
from typing import Any

import tldextract
import tldextract.tldextract as _tld
from presidio_analyzer import predefined_recognizers as pr

# offline: the bundled public-suffix snapshot instead of a download on first use
_tld.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

_RECS: list[Any] = [pr.CreditCardRecognizer(), pr.EmailRecognizer(), pr.UsSsnRecognizer(), pr.PhoneRecognizer()]
if hasattr(pr, "InAadhaarRecognizer"):
    _RECS.append(pr.InAadhaarRecognizer())


def scrub(text: str) -> str:
    found = []
    for rec in _RECS:
        for r in rec.analyze(text, entities=rec.supported_entities, nlp_artifacts=None) or []:
            if r.score > 0:
                found.append((r.start, r.end, r.entity_type))
    found.sort(key=lambda x: (x[0], -x[1]))
    out, pos = [], 0
    for s, e, t in found:
        if s < pos:
            continue
        out.append(text[pos:s])
        out.append(f"<{t}>")
        pos = e
    out.append(text[pos:])
    return "".join(out)


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            o = json.loads(line)
            sys.stdout.write(json.dumps({"id": o.get("id"), "text": scrub(o["text"])}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
