"""What the README and docs/exit-codes.md promise about the command line, checked against the
command tree and the ExitCode enum so the two cannot drift apart."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import typer.main

from swarm.cli.main import app
from swarm.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
# the README names these, and says why they take no --json
WITHOUT_JSON = {"admin wal fetch", "admin scrub", "api serve"}


def commands() -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(c: Any, path: list[str], ctx: click.Context) -> None:
        if hasattr(c, "list_commands"):  # a group (Typer's own click classes are not click.Group)
            for name in c.list_commands(ctx):
                sub = c.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name], click.Context(sub, parent=ctx))
        elif not c.hidden:
            out[" ".join(path)] = c

    root = typer.main.get_command(app)
    walk(root, [], click.Context(root))
    return out


def test_every_command_takes_json_but_the_three_the_readme_names() -> None:
    cmds = commands()
    assert WITHOUT_JSON <= set(cmds)
    lacking = {name for name, c in cmds.items()
               if not any("--json" in getattr(p, "opts", ()) for p in c.params)}
    assert lacking == WITHOUT_JSON
    readme = (ROOT / "README.md").read_text()
    for name in WITHOUT_JSON:
        assert f"`{name}`" in readme, name


def test_exit_codes_doc_lists_every_exit_code() -> None:
    doc = (ROOT / "docs" / "exit-codes.md").read_text()
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| ([A-Z_]+) \|", doc, re.MULTILINE)}
    assert rows == {int(c): c.name for c in ExitCode}
