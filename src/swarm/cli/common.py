"""Helpers every command uses: settings from the context, JSON/human output, progress."""
from __future__ import annotations

import os
import sys
from typing import Any

import typer

from swarm.config import Settings, load_settings
from swarm.ui.progress import DEFAULT_INTERVAL_S, ProgressReporter

JSON_OPT = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
PROGRESS_INTERVAL_ENV = "SWARM_PROGRESS_INTERVAL"


def settings(ctx: typer.Context, **overrides: Any) -> Settings:
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    # ``swarm --repo NAME ...``: every command works on that copy of the repository
    overrides.setdefault("copy", obj.get("repo"))
    return load_settings(obj.get("config"), **overrides)


def progress_interval() -> float:
    """Seconds between progress lines when stderr is not a terminal (``SWARM_PROGRESS_INTERVAL``,
    default 5; 0 turns them off). A value that is not a number is ignored, not fatal."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    try:
        return float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


def progress(as_json: bool) -> ProgressReporter:
    """The reporter a command hands its service: with ``--json``, JSON lines on stderr; on a
    terminal, a bar; otherwise (cron, CI) a plain line every few seconds. Stdout is never used."""
    if as_json:
        mode = "json"
    else:
        mode = "bar" if sys.stderr.isatty() else "lines"
    return ProgressReporter(mode, interval=progress_interval())
