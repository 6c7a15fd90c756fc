"""The error catalogue: stable kebab-case codes, one exit code each, rendered the same way in --json,
no literal exit codes in the code, and docs/exit-codes.md generated from it."""
from __future__ import annotations

import re
from pathlib import Path

from swarm.cli.errors_doc import ERROR_MODULES, exit_codes_doc
from swarm.errors import ExitCode, SwarmError, catalogue

ROOT = Path(__file__).resolve().parents[2]
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def classes() -> list[type[SwarmError]]:
    import importlib

    for name in ERROR_MODULES:
        importlib.import_module(name)
    return catalogue()


def test_codes_are_unique_kebab_case_and_documented() -> None:
    cs = classes()
    codes = [c.code for c in cs]
    assert len(codes) == len(set(codes)), sorted(codes)
    for c in cs:
        assert KEBAB.match(c.code), c
        assert isinstance(c.exit_code, ExitCode), c
        assert (c.__doc__ or "").strip(), f"{c.__name__} has no docstring (its catalogue entry)"
    for wanted in ("wal-conflict", "target-out-of-range", "datadir-not-empty", "cluster-mismatch", "lock-held",
                   "key-mismatch", "not-found", "validation-failed", "archive-failing", "wrong-kind"):
        assert wanted in codes


def test_every_error_renders_its_code_in_json() -> None:
    for c in classes():
        try:
            exc = c("something happened", hint="do this")
        except TypeError:  # a class with a wider constructor
            continue
        d = exc.to_dict()
        assert d == {"error": c.code, "message": "something happened", "hint": "do this",
                     "exit_code": int(c.exit_code)}


def test_exit_codes_doc_is_generated_from_the_code() -> None:
    assert (ROOT / "docs" / "exit-codes.md").read_text() == exit_codes_doc(), (
        "docs/exit-codes.md is stale: run `python -m swarm.cli.errors_doc > docs/exit-codes.md`")


def test_no_literal_exit_codes() -> None:
    literal = re.compile(r"(sys\.exit|typer\.Exit|raise SystemExit)\(\s*\d+\s*\)")
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "src").rglob("*.py")
           for i, line in enumerate(p.read_text().splitlines(), 1) if literal.search(line)]
    assert not bad, bad
