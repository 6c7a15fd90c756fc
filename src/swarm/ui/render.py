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


def plain(v: Any) -> str:
    """One value as operator text, never Python's repr: ``None`` → ``-``, booleans → yes/no,
    lists → comma separated, dicts → ``key: value`` pairs (``kv`` prints nested ones as an
    indented block instead)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {plain(x)}" for k, x in v.items()) or "-"
    if isinstance(v, list | tuple | set | frozenset):
        return ", ".join(plain(x) for x in v) or "-"
    return str(v)


def sizes(size: int | None, stored: int | None) -> str:
    """The one way ``backup``, ``backups list`` and ``backups show`` label a backup's sizes
    (see services.catalog): plain bytes, then what the repository stores for it."""
    return f"{human_bytes(size)} ({human_bytes(stored)} stored)"


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, show_edge=False, header_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, no_wrap=(i == 0))
    for r in rows:
        t.add_row(*[escape(plain(v)) for v in r])
    out.print(t)


def kv(pairs: Sequence[tuple[str, Any]], *, indent: int = 0) -> None:
    """Aligned ``key  value`` lines; values go through ``plain`` (no markup is interpreted in
    them). A dict value, a list of dicts, or a list of sentences (``warnings``: strings with a
    space in them) is printed as an indented block under its key, one item a line; a list of
    words or numbers (timelines) stays on the key's line, comma separated."""
    width = max(len(k) for k, _ in pairs) if pairs else 0
    pad = " " * indent
    for k, v in pairs:
        if isinstance(v, dict) and v:
            out.print(f"{pad}{k}", markup=False)
            kv([(str(k2), v2) for k2, v2 in v.items()], indent=indent + 2)
        elif isinstance(v, list | tuple) and v and (all(isinstance(x, dict) for x in v) or _sentences(v)):
            out.print(f"{pad}{k}", markup=False)
            for item in v:
                out.print(f"{pad}  - {plain(item)}", markup=False)
        else:
            out.print(f"{pad}{k.ljust(width)}  {plain(v)}", markup=False)


def _sentences(items: Sequence[Any]) -> bool:
    return all(isinstance(x, str) for x in items) and any(" " in x.strip() for x in items)


def error(exc: SwarmError, *, as_json: bool) -> None:
    if as_json:
        emit_json(exc.to_dict())
    err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True)
    if exc.hint:
        err.print(f"[yellow]hint:[/] {escape(exc.hint)}", markup=True)


def dry_run_plan(plan: dict[str, Any], *, as_json: bool, action: str = "restore") -> None:
    """What a destructive command would do, shown instead of doing it: nested values (a
    recovery target, WAL bounds, lists of timelines) as indented blocks, sizes in bytes
    readable, nothing as a Python literal."""
    if as_json:
        emit_json({"dry_run": True, "plan": plan})
        return
    out.print(f"dry run; would {action}:", markup=False)
    kv([(k.replace("_", " "), human_bytes(v) if _is_size(k, v) else v) for k, v in plan.items()])


def _is_size(key: str, v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and (key in ("size", "bytes") or key.endswith("_bytes"))
