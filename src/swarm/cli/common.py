"""Helpers every command uses: settings from the context, JSON/human output, progress."""
from __future__ import annotations

from typing import Any

import typer

from swarm.config import Settings, load_settings
from swarm.ui.progress import ProgressReporter

JSON_OPT = typer.Option(False, "--json", help="Print the result as JSON on stdout.")


def settings(ctx: typer.Context, **overrides: Any) -> Settings:
    root = ctx.find_root()
    config = (root.obj or {}).get("config") if isinstance(root.obj, dict) else None
    return load_settings(config, **overrides)


def progress(as_json: bool) -> ProgressReporter:
    return ProgressReporter(enabled=None if not as_json else False)
