"""``swarm admin scrub``: redact PII from stdin to stdout.

Thin wrapper around :mod:`swarm.scrub`.  The key for the deterministic tokens
comes from ``--key-file`` (raw bytes), else the ``SWARM_SCRUB_KEY`` environment
variable (hex), else a random key for this invocation; a given key shorter than
32 bytes is refused with exit 3 before any input is read.

Typer is imported only inside :func:`register`, so that
``python -m swarm.cli.commands.scrub`` (argparse) starts fast.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from swarm.errors import ConfigError, ExitCode, SwarmError

if TYPE_CHECKING:
    import typer

__all__ = ["default_jobs", "load_key", "main", "register", "run"]

FORMATS = ("auto", "text", "json", "jsonl")


def load_key(key_file: Path | None) -> bytes:
    """Key bytes from a file, else $SWARM_SCRUB_KEY (hex), else 32 random bytes.

    A key from a file or the environment must be at least 32 bytes (64 hex digits from the
    environment): anything shorter is a :class:`ConfigError` (exit 3), since whoever guesses a
    short key can hash candidates and turn tokens back into values.
    """
    from swarm.scrub.tokens import MIN_KEY_BYTES, check_key

    if key_file is not None:
        try:
            data = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the scrub key file {key_file}: {exc.strerror or exc}",
                              hint="Pass --key-file naming a readable file of at least "
                                   f"{MIN_KEY_BYTES} random bytes.") from exc
        # a key written with `echo` ends with a newline; only the line end is stripped, raw bytes stay
        return check_key(data.rstrip(b"\r\n"), source=f"the scrub key in {key_file}")
    env = os.environ.get("SWARM_SCRUB_KEY")
    if env:
        try:
            raw = bytes.fromhex(env.strip())
        except ValueError as exc:
            raise ConfigError("SWARM_SCRUB_KEY is not hexadecimal",
                              hint=f"Set it to {2 * MIN_KEY_BYTES} hex digits, e.g. the output of "
                                   "python -c 'import secrets; print(secrets.token_hex(32))'.") from exc
        return check_key(raw, source="SWARM_SCRUB_KEY")
    return secrets.token_bytes(MIN_KEY_BYTES)


def default_jobs() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run(fmt: str, report: Path | None, key_file: Path | None,
        inp: TextIO | None = None, out: TextIO | None = None, jobs: int | None = None) -> int:
    """Scrub ``inp`` (default stdin) into ``out`` (default stdout); returns an exit code.

    ``jobs`` worker processes scrub JSONL input (default: :func:`default_jobs`); the output
    does not depend on it.
    """
    from swarm.scrub import Scrubber
    from swarm.scrub.stream import scrub_stream

    if fmt not in FORMATS:
        print(f"scrub: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})", file=sys.stderr)
        return int(ExitCode.USAGE)
    if jobs is None:
        jobs = default_jobs()
    if jobs < 1:
        print(f"scrub: --jobs must be at least 1, not {jobs}", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        scrubber = Scrubber(key=load_key(key_file))
    except SwarmError as exc:  # checked before any input is read or output written
        print(f"scrub: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return int(exc.exit_code)
    own_in = own_out = None
    if inp is None:
        inp = own_in = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape", newline="")
    if out is None:
        out = own_out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="surrogateescape",
                                         newline="")
    try:
        scrub_stream(inp, out, scrubber, fmt, jobs=jobs)
        out.flush()
    finally:
        # never close the process's own stdin/stdout when our wrappers go away
        if own_out is not None:
            own_out.flush()
            own_out.detach()
        if own_in is not None:
            own_in.detach()
    if report is not None:
        report.write_text(json.dumps(scrubber.report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return int(ExitCode.OK)


def register(app: typer.Typer) -> None:
    """Add the ``scrub`` command to ``app`` (the ``admin`` sub-app)."""
    import typer

    @app.command("scrub")
    def scrub(
        fmt: str = typer.Option("auto", "--format", help="auto | text | json | jsonl"),
        report: Path | None = typer.Option(None, "--report", help="write redaction counts (JSON) here"),
        key_file: Path | None = typer.Option(None, "--key-file", help="scrub key file (>= 32 random bytes)"),
        jobs: int | None = typer.Option(None, "--jobs", "-j",
                                        help="worker processes for JSONL input (default: the number of cores)"),
    ) -> None:
        """Redact PII (cards, Aadhaar, SSN, email, phone) from stdin to stdout."""
        code = run(fmt, report, key_file, jobs=jobs)
        if code:
            raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry without Typer: ``python -m swarm.cli.commands.scrub``."""
    import argparse

    ap = argparse.ArgumentParser(prog="swarm admin scrub", description=register.__doc__)
    ap.add_argument("--format", dest="fmt", default="auto", choices=FORMATS)
    ap.add_argument("--report", type=Path)
    ap.add_argument("--key-file", type=Path)
    ap.add_argument("--jobs", "-j", type=int)
    a = ap.parse_args(argv)
    return run(a.fmt, a.report, a.key_file, jobs=a.jobs)


if __name__ == "__main__":
    sys.exit(main())
