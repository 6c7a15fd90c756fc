"""pg_dump and pg_restore as subprocesses, with errors an operator can act on.

Both run with the libpq environment cleared except what the URL gives, so a stray PGHOST
or PGDATABASE cannot redirect them.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from swarm.errors import Interrupted, SourceError
from swarm.sources.postgres.basebackup import conninfo_without_password, libpq_env
from swarm.sources.postgres.binaries import tool
from swarm.sources.postgres.conn import redact

# Session settings for restores: bigger sorts for index builds, no waiting on WAL flush
# per commit (pg_restore commits per object; durability comes from the final checkpoint).
RESTORE_PGOPTIONS = "-c maintenance_work_mem=256MB -c synchronous_commit=off"


def _env(pgoptions: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGAPPNAME"] = "swarm-backup"
    if pgoptions:
        env["PGOPTIONS"] = pgoptions
    return env


def _run(args: list[str], what: str, url: str, *, on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
         timeout: float | None = None, pgoptions: str | None = None) -> str:
    env = _env(pgoptions)
    password = libpq_env(url).get("PGPASSWORD")
    if password:
        env["PGPASSWORD"] = password
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if on_start:
        on_start(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        raise Interrupted(f"{what} interrupted") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        reason = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        text = err.decode(errors="replace").strip()
        raise SourceError(f"{what} failed ({reason}) against {redact(url)}: {text[-1500:]}",
                          hint="Check that the server is up and reachable; no backup was recorded." if
                          "pg_dump" in what else "Read the messages above; the target may be partly restored.")
    return out.decode(errors="replace") + err.decode(errors="replace")


def table_pattern(schema: str, table: str) -> str:
    """A pg_dump table pattern matching exactly ``schema.table`` (quoted: no wildcards, case kept)."""
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


def pg_dump_directory(url: str, outdir: Path, *, jobs: int, snapshot: str | None, bindir: str | None = None,
                      exclude_table_data: list[str] | None = None,
                      on_start: Callable[[subprocess.Popen[bytes]], None] | None = None) -> None:
    """``pg_dump -Fd -j jobs -Z0``: compression is the repository's job (zstd, in parallel).

    ``exclude_table_data`` (patterns from ``table_pattern``) leaves those tables' rows out;
    the caller copies them itself (swarm.sources.postgres.copy). The dump keeps their
    definitions and everything else: sequences and their values, large objects, ownership
    and privileges, materialized views (refreshed on restore)."""
    args = [tool("pg_dump", bindir), "--format=directory", "--compress=0", f"--file={outdir}",
            f"--dbname={conninfo_without_password(url)}",
            "--no-sync"]
    if jobs > 1:
        args.append(f"--jobs={jobs}")
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    for pattern in exclude_table_data or []:
        args.append(f"--exclude-table-data={pattern}")
    _run(args, "pg_dump", url, on_start=on_start)


def pg_restore_list(dumpdir: Path, bindir: str | None = None) -> str:
    """The dump's table of contents (``pg_restore -l``); SourceError if unreadable."""
    r = subprocess.run([tool("pg_restore", bindir), "-l", str(dumpdir)], capture_output=True, text=True,
                       check=False, env=_env())
    if r.returncode != 0:
        raise SourceError(f"pg_restore -l cannot read the dump: {r.stderr.strip()[-800:]}")
    return r.stdout


def toc_lines(dumpdir: Path, bindir: str | None = None) -> list[str]:
    """The dump's table of contents as ``pg_restore -l`` lists it, comments left out."""
    return [line for line in pg_restore_list(dumpdir, bindir).splitlines() if line.strip() and
            not line.startswith(";")]


def table_data_entries(lines: list[str]) -> list[tuple[str, str]]:
    """``(dump id, TOC line)`` of every ``TABLE DATA`` entry; its rows are ``<dump id>.dat``."""
    out = []
    for line in lines:
        head, _, rest = line.partition(";")
        if head.strip().isdigit() and " TABLE DATA " in rest:
            out.append((head.strip(), line))
    return out


def copy_statements(dumpdir: Path, entries: list[tuple[str, str]],
                    bindir: str | None = None) -> tuple[list[str], str | None]:
    """The ``COPY ... FROM stdin`` statement of each ``TABLE DATA`` entry, in order, and the
    dump's client encoding (what its data files are written in), read from
    ``toc.dat`` alone: pg_restore prints them as a script from a scratch directory that holds a
    copy of ``toc.dat`` and an EMPTY file per entry, so no row is read or written. The scratch
    directory (under ``dumpdir``) is removed afterwards; a crash leaves it, empty files only."""
    if not entries:
        return [], None
    scratch = dumpdir / ".copy-statements"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    try:
        shutil.copyfile(dumpdir / "toc.dat", scratch / "toc.dat")
        for dump_id, _ in entries:
            (scratch / f"{dump_id}.dat").touch()
        (scratch / "list").write_text("".join(line + "\n" for _, line in entries))
        r = subprocess.run([tool("pg_restore", bindir), "--data-only", "-f", "-", "-L", str(scratch / "list"),
                            str(scratch)], capture_output=True, text=True, check=False, env=_env())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if r.returncode != 0:
        raise SourceError(f"pg_restore cannot read the dump: {r.stderr.strip()[-800:]}")
    stmts = [line.removesuffix(";") for line in r.stdout.splitlines()
             if line.startswith("COPY ") and line.endswith(" FROM stdin;")]
    enc = re.search(r"^SET client_encoding = '([A-Za-z0-9_]+)';$", r.stdout, re.MULTILINE)
    if len(stmts) != len(entries):
        raise SourceError(f"pg_restore listed {len(stmts)} COPY statements for {len(entries)} table data entries",
                          hint="The dump's table of contents is unusual; restore it with pg_restore by hand.")
    return stmts, enc.group(1) if enc else None


def clean_statements(dumpdir: Path, bindir: str | None = None) -> list[str]:
    """The DROP statements ``pg_restore --clean --if-exists`` would run for this dump.

    pg_restore emits them first, one per line, before any CREATE; running them ourselves
    lets the restore proceed section by section (a sectioned ``--clean`` cannot drop a
    table that post-data foreign keys still reference).
    """
    r = subprocess.run([tool("pg_restore", bindir), "--clean", "--if-exists", "--schema-only", "-f", "-",
                        str(dumpdir)], capture_output=True, text=True, check=False, env=_env())
    if r.returncode != 0:
        raise SourceError(f"pg_restore cannot read the dump: {r.stderr.strip()[-800:]}")
    out = []
    for line in r.stdout.splitlines():
        if line.startswith(("CREATE ", "COPY ")):
            break
        if line.startswith(("DROP ", "ALTER ")) and line.endswith(";"):
            out.append(line)
    return out


def pg_restore(url: str, dumpdir: Path, *, jobs: int, clean: bool = False, no_owner: bool = False,
               bindir: str | None = None, section: str | None = None, use_list: Path | None = None) -> str:
    """``pg_restore -j`` of the whole dump or of one ``section`` (pre-data, data, post-data),
    only the entries of ``use_list`` (``-L``) if given."""
    args = [tool("pg_restore", bindir), f"--dbname={conninfo_without_password(url)}", "--exit-on-error"]
    if use_list is not None:
        args.append(f"--use-list={use_list}")
    if section != "pre-data":  # pre-data is restored serially by pg_restore anyway
        args.append(f"--jobs={jobs}")
    if section:
        args.append(f"--section={section}")
    if clean and section in (None, "pre-data"):
        args += ["--clean", "--if-exists"]
    if no_owner:
        args += ["--no-owner", "--no-privileges"]
    args.append(str(dumpdir))
    return _run(args, f"pg_restore{' --section=' + section if section else ''}", url, pgoptions=RESTORE_PGOPTIONS)


def _children(pid: int) -> set[int]:
    """``pid`` and all its descendants (pg_dump's parallel workers are forked children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(parents.get(p, []))
    return out


def open_files(pid: int) -> set[str]:
    """Paths that ``pid`` or its descendants hold open right now."""
    found: set[str] = set()
    for p in _children(pid):
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                found.add(os.readlink(f"/proc/{p}/fd/{fd}"))
            except OSError:
                continue
    return found


def finished_data_files(dumpdir: Path, pid: int, already: set[str]) -> list[Path]:
    """Table data files of a running ``pg_dump -Fd`` that are complete.

    pg_dump creates each ``<dumpid>.dat`` by opening it, writes it, closes it and never
    opens it again; so a file that exists (listed first) and is held open by none of the
    pg_dump processes (checked second) is complete. ``toc.dat`` is written last and is
    only taken after pg_dump exits.
    """
    names = [e for e in os.listdir(dumpdir) if e.endswith(".dat") and e != "toc.dat" and e not in already]
    if not names:
        return []
    busy = open_files(pid)
    return [dumpdir / n for n in sorted(names) if str(dumpdir / n) not in busy]
