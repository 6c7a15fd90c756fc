"""`--help` reads well on an 80-column terminal: no option text swallowed as markup, every
argument and option described, and the exit-status lines kept whole."""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import pytest
import typer

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def help_of(*args: str) -> str:
    env = dict(os.environ, COLUMNS="80", TERM="dumb", NO_COLOR="1")
    r = subprocess.run([*SWARM, *args, "--help"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _commands() -> list[tuple[str, typer.core.TyperCommand]]:
    from swarm.cli.main import app

    out = []

    def walk(cmd: object, path: str) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            out.append((path, cmd))
    walk(typer.main.get_command(app), "")
    return out


def test_a_config_section_in_option_help_is_shown() -> None:
    text = re.sub(r"[\s│]+", " ", help_of("admin", "backup", "postgres"))
    assert "[backup] wal_wait_timeout" in text, text


def test_restore_physical_shows_its_optional_id_once_bracketed_and_described() -> None:
    text = help_of("admin", "restore", "physical")
    assert "[[ID]]" not in text and "[ID]" in text
    assert re.search(r"│\s+ID\s+<str>\s+The backup to start from", text), text
    assert "--no-archive" in text  # accepted, so listed


@pytest.mark.parametrize("cmd", [["admin", "wal", "stream"], ["admin", "restore-point"]])
def test_db_url_is_described(cmd: list[str]) -> None:
    line = next(ln for ln in help_of(*cmd).splitlines() if "--db-url" in ln)
    assert re.search(r"--db-url\s+<str>\s+[A-Za-z]", line), line


DESCRIBED = ("admin restore physical", "admin restore postgres", "admin verify", "admin backup postgres",
             "admin wal stream", "admin restore-point")


def test_every_argument_and_option_has_a_description() -> None:
    missing = [f"{path} {p.name}" for path, cmd in _commands() if path in DESCRIBED for p in cmd.params
               if not getattr(p, "hidden", False)
               and not (getattr(p, "help", None) or "").strip()]
    assert not missing, missing


def test_exit_status_lines_fit_an_80_column_terminal() -> None:
    """Typer keeps the line breaks of every paragraph after the first, then wraps at the
    terminal's width: a line longer than the panel, followed by a kept break, is cut
    mid-sentence (a paragraph's last line may be long: it just wraps)."""
    long = []
    for path, cmd in _commands():
        paragraphs = inspect.cleandoc(cmd.help or "").split("\n\n")[1:]
        long += [f"{path}: {ln}" for para in paragraphs for ln in para.splitlines()[:-1] if len(ln) > 76]
    assert not long, "\n".join(long)
