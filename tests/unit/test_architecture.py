"""Rules of the layout that import-linter cannot express."""
from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "swarm"
# the wiring (turns Settings into what services take) and the server's WAL entry point
WIRING = {"services/context.py", "services/wal/fastpath.py", "services/__init__.py"}  # the last only says so


def test_only_the_wiring_reads_settings() -> None:
    """Services take what they need (an opened repository, bucket configurations, the server user's
    access, a restore-test environment); only the wiring reads Settings."""
    pattern = re.compile(r"\b(Settings|load_settings)\b")
    offenders = [str(p.relative_to(SRC)) for p in (SRC / "services").rglob("*.py")
                 if str(p.relative_to(SRC)) not in WIRING and pattern.search(p.read_text())]
    assert not offenders, offenders
