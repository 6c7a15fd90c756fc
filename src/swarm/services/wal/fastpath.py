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

import os
import sys
from pathlib import Path

from swarm.errors import ExitCode, RefusedError, SourceError, SwarmError


def fast_main(argv: list[str]) -> int | None:
    """Handle ``wal push`` / ``wal fetch`` as written into postgresql.conf, else return None.

    Sets the umask to 077 first, as ``swarm.cli.main.main`` does: WAL segments, spool files and
    repository objects written on the server's behalf are private to the user that writes them."""
    os.umask(0o077)
    if len(argv) < 6 or argv[0] != "--config" or argv[2:4] != ["admin", "wal"]:
        return None
    config, verb, args = argv[1], argv[4], argv[5:]
    if verb == "fetch" and len(args) == 2:
        return fetch_command(config, args[0], Path(args[1]))
    if verb == "push" and len(args) == 1:
        return _push(config, Path(args[0]))
    return None


# restore_command exit status for "the file exists but cannot be read" (damaged, wrong key,
# repository unreachable): above 125, so PostgreSQL aborts recovery instead of taking it
# for the end of the archive and promoting early, silently short of its target.
FETCH_ABORT = 126
# restore_command exit status for "not archived": PostgreSQL's protocol (any status 1..125)
NOT_ARCHIVED = 1


def fetch_command(config: str | None, name: str, dest: Path, *, prefetch: int | None = None) -> int:
    """``wal fetch NAME PATH``, the one implementation (the CLI command calls it too): 0 written,
    1 not archived (quietly: the server probes for files that do not exist), ``FETCH_ABORT`` when
    the file is archived but cannot be read (message on stderr)."""
    from swarm.services.wal.archive import PREFETCH, fetch_wal, self_argv, spawn_detached, take_from_spool

    ahead = PREFETCH if prefetch is None else prefetch
    spawn = spawn_detached([*self_argv(), *(["--config", config] if config else []), "admin", "wal"])
    try:
        if take_from_spool(name, dest, prefetch=ahead, spawn=spawn):
            return int(ExitCode.OK)  # prefetched: no repository round trip
        from swarm.config import load_settings
        from swarm.services.context import open_repository

        repo = open_repository(load_settings(config), check_key=False, remember=False)
        found = fetch_wal(repo, name, dest, prefetch=ahead, spawn=spawn)
        return int(ExitCode.OK) if found else NOT_ARCHIVED
    except ValueError:
        return NOT_ARCHIVED
    except SwarmError as exc:
        _fail(exc)
        return FETCH_ABORT


def _push(config: str, path: Path) -> int:
    from swarm.config import load_settings
    from swarm.services.context import open_repository
    from swarm.services.wal.archive import clear_push_failure, push_wal, record_push_failure

    try:
        if not path.is_file():
            return _fail(RefusedError(f"{path} is not a file", hint="archive_command passes %p, the path of a WAL "
                                                                    "file."))
        push_wal(open_repository(load_settings(config), create=True, check_key=False, remember=False), path)
        clear_push_failure(path)
        return int(ExitCode.OK)
    except ValueError as exc:
        record_push_failure(path, str(exc))
        return _fail(RefusedError(str(exc)))
    except SwarmError as exc:
        record_push_failure(path, exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return _fail(exc)
    except OSError as exc:
        record_push_failure(path, str(exc))
        return _fail(SourceError(f"cannot push {path.name}: {exc}"))


def _fail(exc: SwarmError) -> int:
    sys.stderr.write(f"error: {exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"hint: {exc.hint}\n")
    return int(exc.exit_code)
