"""Render results and errors for a terminal or as JSON (stdout). Human text goes to stdout,
diagnostics and progress to stderr, so ``--json`` output is always parseable."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from swarm.errors import SwarmError

# Piped output (logs, cron mail) is not cut to 80 columns: ids and segment names must survive.
out = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True, soft_wrap=True, highlight=False, width=None if sys.stderr.isatty() else 250)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, show_edge=False, header_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, no_wrap=(i == 0))
    for r in rows:
        t.add_row(*["-" if v is None else str(v) for v in r])
    out.print(t)


def kv(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs) if pairs else 0
    for k, v in pairs:
        out.print(f"{k.ljust(width)}  {v}")


def error(exc: SwarmError, *, as_json: bool) -> None:
    if as_json:
        emit_json(exc.to_dict())
    err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True)
    if exc.hint:
        err.print(f"[yellow]hint:[/] {escape(exc.hint)}", markup=True)


def dry_run_plan(plan: dict[str, Any], *, as_json: bool) -> None:
    """What a destructive command would do, shown instead of doing it."""
    if as_json:
        emit_json({"dry_run": True, "plan": plan})
        return
    out.print("dry run; would restore:")
    kv([(k, "-" if v is None else v) for k, v in plan.items()])
