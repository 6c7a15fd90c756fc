"""The fast path of ``wal push`` / ``wal fetch`` as the server runs them (no Typer, no rich).

PostgreSQL starts archive_command and restore_command once per WAL file; building the
whole Typer application costs more than the work itself when the file is already in the
prefetch spool. The server user's launcher (swarm.services.wal.server_access) calls
``fast_main`` first; it handles exactly the command lines we write into postgresql.conf
(``--config C admin wal push P`` and ``--config C admin wal fetch NAME P``) and returns
None for anything else, which then goes to the full CLI. Same exit codes as the CLI: 0 done,
1 not archived (fetch), and a SwarmError's exit code with its message on stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path

from swarm.errors import SwarmError


def fast_main(argv: list[str]) -> int | None:
    if len(argv) < 6 or argv[0] != "--config" or argv[2:4] != ["admin", "wal"]:
        return None
    config, verb, args = argv[1], argv[4], argv[5:]
    if verb == "fetch" and len(args) == 2:
        return _fetch(config, args[0], Path(args[1]))
    if verb == "push" and len(args) == 1:
        return _push(config, Path(args[0]))
    return None


# restore_command exit status for "the file exists but cannot be read" (damaged, wrong key,
# repository unreachable): above 125, so PostgreSQL aborts recovery instead of taking it
# for the end of the archive and promoting early, silently short of its target.
FETCH_ABORT = 126


def _fetch(config: str, name: str, dest: Path) -> int:
    from swarm.services.wal.archive import fetch_wal, self_argv, spawn_detached, take_from_spool

    spawn = spawn_detached([*self_argv(), "--config", config, "admin", "wal"])
    try:
        if take_from_spool(name, dest, spawn=spawn):
            return 0
        from swarm.config import load_settings
        from swarm.services.context import open_repository

        repo = open_repository(load_settings(config), check_key=False)
        return 0 if fetch_wal(repo, name, dest, spawn=spawn) else 1
    except ValueError:
        return 1
    except SwarmError as exc:
        _fail(exc)
        return FETCH_ABORT


def _push(config: str, path: Path) -> int:
    from swarm.config import load_settings
    from swarm.services.context import open_repository
    from swarm.services.wal.archive import clear_push_failure, push_wal, record_push_failure

    try:
        if not path.is_file():
            sys.stderr.write(f"error: {path} is not a file\n")
            return 8
        push_wal(open_repository(load_settings(config), create=True, check_key=False), path)
        clear_push_failure(path)
        return 0
    except ValueError as exc:
        record_push_failure(path, str(exc))
        sys.stderr.write(f"error: {exc}\n")
        return 8
    except SwarmError as exc:
        record_push_failure(path, exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return _fail(exc)
    except OSError as exc:
        record_push_failure(path, str(exc))
        sys.stderr.write(f"error: {exc}\n")
        return 10


def _fail(exc: SwarmError) -> int:
    sys.stderr.write(f"error: {exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"hint: {exc.hint}\n")
    return int(exc.exit_code)
