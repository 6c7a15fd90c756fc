"""Regression on the shared dev corpus and on the held-out synthetic corpus.

The dev corpus and scorer live beside the repository in ``../shared/pii``; if
they are missing these tests fail (they are never skipped).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from swarm.scrub import Scrubber

from .helpers import KEY

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "pii"
TYPES = ["PAN", "AADHAAR", "SSN", "EMAIL", "PHONE"]


def _load(path: Path, name: str) -> ModuleType:
    assert path.exists(), f"missing {path}: the PII corpus/scorer must sit in ../shared/pii beside the repo"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _score(records: list[dict[str, Any]]) -> dict[str, Any]:
    ev = _load(SHARED / "evaluate.py", "pii_evaluate")
    s = Scrubber(KEY)
    outputs = {r["id"]: s.scrub(r["text"]) for r in records}
    res: dict[str, Any] = ev.evaluate(records, outputs)
    return res


def _assert_quality(res: dict[str, Any], label: str) -> None:
    for t in TYPES:
        e = res["per_entity"][t]
        assert e["f1"] >= 0.99, f"{label}: {t} F1 {e['f1']:.4f} ({e})"
    for t in ("PAN", "AADHAAR", "SSN"):
        assert res["per_entity"][t]["leaks_normalized"] == 0, f"{label}: {t} leaked"
    assert res["totals"]["json_broken"] == 0, f"{label}: JSON broken"
    hn = res["hard_negatives_total"]
    assert hn["touched"] < 0.01 * hn["n"], f"{label}: hard negatives touched {hn}"


def test_dev_corpus() -> None:
    path = SHARED / "corpus_dev.jsonl"
    assert path.exists(), f"missing {path}: the dev corpus must sit in ../shared/pii beside the repo"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) >= 200
    _assert_quality(_score(records), "dev")


def test_synthetic_corpus() -> None:
    gen = _load(REPO / "bench" / "scrub_corpus.py", "scrub_corpus")
    records = gen.generate(seed=12345, n=400)
    gen.check(records)
    assert records == gen.generate(seed=12345, n=400)          # deterministic
    kinds = {r["kind"] for r in records}
    assert {"text", "kyc", "checkout", "conversation", "jsonl"} <= kinds
    forms = {s["form"] for r in records for s in r["spans"]}
    assert {"sentence", "json_value", "split_fields", "url_encoded"} <= forms
    _assert_quality(_score(records), "synthetic")
