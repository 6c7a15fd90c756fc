"""Prune over 60 days of history: swarm vs `restic forget --prune`, in one run.

History, written in-process through swarm's own repository code under a simulated clock (backups
dated from ``--days`` days ago to now, one day apart):

* a cluster data directory of ``--size-mb`` (default 1,100 MB) of 8 KiB pages (half random, half
  zero, so about 2:1 compressible), 1% of its pages rewritten every day; a physical backup every 7
  days through the tree store exactly as ``swarm admin backup postgres --physical`` stores one
  (FixedChunker(32 KiB), dedup against the previous physical backup, packs, ``tree.json``, refs);
* WAL: one 16 MiB segment a day (random bytes: WAL does not compress much);
* a nightly logical dump of ``--dump-mb`` (default 100 MB) of SQL-like text with 1% of its lines
  changed each day, stored as ``swarm admin backup postgres`` stores a dump object (zstd, AES-GCM);
  the same bytes go to a restic repository (``restic backup --stdin --time <that day>``);
* a nightly state snapshot (``backup_state``) of a small state directory (jobs.json changed, one
  new run directory of 200 KB a day, run directories older than 14 days removed).

The data directory is synthetic, not pg_basebackup's stream of a seeded cluster: building 60 days of
a real 1 GB cluster (9 base backups, 60 dumps of it) does not fit the time this machine (2 cores,
shared) gives a benchmark; prune's cost depends on the repository's objects, blocks and trees, which
are the same.

Then, on copies of both repositories (runs alternate, ``--runs``): ``swarm admin prune --json`` with
the default policy (seed table: logical 30 d, physical 3 months, state 30 d, WAL 7 d window,
``--max-unused 10%``) and ``restic forget --keep-within 30d --prune --max-unused 10%``: wall time,
peak memory of the process tree (bench/procmem.py), bytes freed.

    .venv/bin/python bench/prune.py [--size-mb 1100] [--dump-mb 100] [--days 60] [--runs 2]

Writes the `prune` section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, update_section
from procmem import Measured, run

from swarm.clock import FrozenClock, utc_iso
from swarm.crypto.keys import create_key_file, load_key_file
from swarm.model.refs import Refs, WalRange
from swarm.repo import Repository
from swarm.repo.chunker import FixedChunker
from swarm.repo.tree import Meta, TreeWriter, open_snapshot
from swarm.services.state.backup import StateScope, backup_state
from swarm.storage.local import LocalStore

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORK = ROOT / "bench" / ".work" / "prune"
PAGE = 8192
FILE_MB = 64
SYSID = "7311000000000000042"


def seg(n: int) -> str:
    return f"{1:08X}{0:08X}{n:08X}"


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def page(rng: random.Random) -> bytes:
    return rng.randbytes(PAGE // 2) + bytes(PAGE // 2)


def make_pgdata(d: Path, size_mb: int, rng: random.Random) -> list[Path]:
    files = []
    left = size_mb << 20
    i = 0
    while left > 0:
        n = min(left, FILE_MB << 20)
        p = d / "base" / "16384" / f"{16400 + i}"
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("wb") as fh:
            for _ in range(n // PAGE):
                fh.write(page(rng))
        files.append(p)
        left -= n
        i += 1
    (d / "PG_VERSION").write_text("15\n")
    return files


def change_pages(files: list[Path], share: float, rng: random.Random) -> None:
    total = sum(f.stat().st_size for f in files) // PAGE
    for _ in range(int(total * share)):
        f = rng.choice(files)
        with f.open("r+b") as fh:
            fh.seek(rng.randrange(f.stat().st_size // PAGE) * PAGE)
            fh.write(page(rng))


def physical(repo: Repository, pgdata: Path, previous: Any, day_seg: int) -> Any:
    chunker = FixedChunker(32 << 10)
    known = repo.present_blocks(open_snapshot(repo, previous).referenced_blocks()) if previous else {}
    w = repo.begin_backup("pg-physical")
    tw = TreeWriter(repo, w, chunker=chunker, known=known, workers=2)
    for p in sorted(pgdata.rglob("*")):
        rel = p.relative_to(pgdata).as_posix()
        st = p.stat()
        meta = Meta(st.st_mode & 0o7777, st.st_mtime_ns)
        if p.is_dir():
            tw.add_dir(rel, meta)
        else:
            with p.open("rb") as fh:
                tw.add_file(rel, meta, chunker.chunks(iter(lambda fh=fh: fh.read(1 << 20), b"")))
    root = tw.finish()
    packs = [(p.backup_id, p.name, p.dek_id) for p in root.packs]
    from swarm.model.refs import DataRef

    refs = Refs.of(packs=[DataRef(b, n) for b, n, _d in packs], deks={d for _b, _n, d in packs},
                   wal=[WalRange(1, seg(day_seg), seg(day_seg))])
    src = {"format": "tree", "system_identifier": SYSID, "timeline": 1, "start_lsn": f"0/{day_seg:X}000000",
           "stop_lsn": f"0/{day_seg:X}000100", "start_wal": seg(day_seg), "stop_wal": seg(day_seg),
           "wal_segments": [seg(day_seg)], "segment_size": 16 << 20, "stop_time": utc_iso(repo.clock.now()),
           "block_size": 32 << 10}
    return w.commit(src, refs)


def dump_lines(n_lines: int, rng: random.Random) -> list[bytes]:
    return [f"{i}\t{rng.getrandbits(64):x}\trun-{rng.randrange(10**6)}\t{{\"status\": \"ok\", \"n\": "
            f"{rng.randrange(10**9)}}}\n".encode() for i in range(n_lines)]


def build(args: argparse.Namespace) -> dict[str, Any]:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    rng = random.Random(7)
    key = WORK / "keys" / "repo.key"
    create_key_file(key)
    end = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    clock = FrozenClock(end - timedelta(days=args.days - 1))
    repo = Repository.open(LocalStore(WORK / "repo", create=True), load_key_file(key), clock, create=True)
    pgdata = WORK / "pgdata"
    files = make_pgdata(pgdata, args.size_mb, rng)
    state = WORK / "state"
    (state / "cron").mkdir(parents=True)
    (state / "batch").mkdir()
    lines = dump_lines(args.dump_mb * 10_000, rng)  # about 100 bytes a line
    env = restic_env()
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    (WORK / "dumps").mkdir()
    previous = None
    t0 = time.monotonic()
    for day in range(args.days):
        if day:
            change_pages(files, 0.01, rng)
            for _ in range(len(lines) // 100):
                i = rng.randrange(len(lines))
                lines[i] = dump_lines(1, rng)[0].replace(b"0\t", f"{i}\t".encode(), 1)
        repo.put_wal(seg(day + 1), rng.randbytes(16 << 20))
        if day % 7 == 0:
            previous = physical(repo, pgdata, previous, day + 1)
        w = repo.begin_backup("pg-logical")
        w.put_object("dump.sql", iter([b"".join(lines[i:i + 20_000]) for i in range(0, len(lines), 20_000)]))
        w.commit({"database": "app", "format": "bench"})
        (WORK / "dumps" / "app.sql").write_bytes(b"".join(lines))
        subprocess.run(["restic", "backup", "--quiet", "--host", "bench", "--time",
                        clock.now().strftime("%Y-%m-%d %H:%M:%S"), str(WORK / "dumps" / "app.sql")],
                       env=env, check=True, capture_output=True)
        (state / "cron" / "jobs.json").write_text(json.dumps({"day": day, "jobs": list(range(50))}))
        run_dir = state / "batch" / f"run-{day:03d}"
        run_dir.mkdir()
        (run_dir / "out.bin").write_bytes(rng.randbytes(200_000))
        old = state / "batch" / f"run-{day - 14:03d}"
        if old.exists():
            shutil.rmtree(old)
        backup_state(repo, StateScope(state), recent_s=0)
        clock.advance(86400)
        print(f"day {day + 1}/{args.days}: {time.monotonic() - t0:.0f} s", flush=True)
    (WORK / "dumps" / "app.sql").unlink()
    return {"build_s": time.monotonic() - t0, "repo_bytes": du(WORK / "repo"), "restic_bytes": du(WORK / "restic"),
            "pgdata_bytes": du(pgdata), "dump_bytes": sum(len(x) for x in lines),
            "backups": len(repo.list_backups())}


def restic_env(repo: Path | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e.update(RESTIC_REPOSITORY=str(repo or WORK / "restic"), RESTIC_PASSWORD="bench-password")
    return e


def swarm_env(repo: Path) -> dict[str, str]:
    home = repo.parent / "home"
    home.mkdir(exist_ok=True)
    (home / "swarm.toml").write_text("")
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    e.update(SWARM_HOME=str(home), SWARM_BACKUP_REPO=f"file://{repo}",
             SWARM_KEY_URL=f"file://{WORK / 'keys' / 'repo.key'}")
    return e


def one_run(i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in (("swarm", "restic") if i % 2 == 0 else ("restic", "swarm")):
        copy = WORK / f"run-{i}-{side}" / "repo"
        if copy.parent.exists():
            shutil.rmtree(copy.parent)
        copy.parent.mkdir(parents=True)
        shutil.copytree(WORK / ("repo" if side == "swarm" else "restic"), copy)
        before = du(copy)
        if side == "swarm":
            m: Measured = run([str(BIN / "swarm"), "admin", "prune", "--json"], env=swarm_env(copy))
            if m.returncode != 0:
                raise SystemExit(f"swarm prune failed: {m.stderr[-2000:]}")
            d = json.loads(m.stdout)
            out["swarm"] = {"s": m.seconds, "inner_s": d["seconds"], "rss": m.peak_rss, "freed": before - du(copy),
                            "removed": len(d["removed_backups"]), "rewritten": d["bytes_rewritten"],
                            "repacked": len(d["repacked"]), "size_before": d["size_before"],
                            "size_after": d["size_after"]}
        else:
            m = run(["restic", "forget", "--keep-within", "30d", "--prune", "--max-unused", "10%"],
                    env=restic_env(copy))
            if m.returncode != 0:
                raise SystemExit(f"restic forget failed: {m.stderr[-2000:]}")
            out["restic"] = {"s": m.seconds, "rss": m.peak_rss, "freed": before - du(copy)}
        shutil.rmtree(copy.parent)
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1100)
    ap.add_argument("--dump-mb", type=int, default=100)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    facts = build(args)
    runs = [one_run(i) for i in range(args.runs)]
    best = {s: min((r[s] for r in runs), key=lambda x: x["s"]) for s in ("swarm", "restic")}
    sw, rs = best["swarm"], best["restic"]
    kinds = sorted(set(sw["size_before"]) | set(sw["size_after"]))
    by_kind = ", ".join(f"{k} {mb(sw['size_before'].get(k, 0))} → {mb(sw['size_after'].get(k, 0))}" for k in kinds)
    all_sw = [round(r["swarm"]["s"], 1) for r in runs]
    all_rs = [round(r["restic"]["s"], 1) for r in runs]
    restic_v = subprocess.run(["restic", "version"], capture_output=True, text=True, check=False).stdout.split()[1]
    md = f"""## Prune over {args.days} days of history (`bench/prune.py`)

{machine_line()}

History written in-process under a simulated clock ({facts['build_s']:.0f} s): a synthetic data directory of
{mb(facts['pgdata_bytes'])} (8 KiB pages, 1% rewritten daily) backed up weekly through the tree store as physical
backups are, one 16 MiB WAL segment a day, a nightly logical dump of {mb(facts['dump_bytes'])} (1% of lines changed
daily) and a nightly state snapshot: {facts['backups']} backups, swarm repository {mb(facts['repo_bytes'])}. restic
{restic_v} got the same dumps
(`restic backup --time`), repository {mb(facts['restic_bytes'])}. Load average when the run started: {load:.1f}
(2 cores shared with other jobs). Policies: swarm's default (logical 30 d, physical 3 months, state 30 d, WAL
window 7 d, `--max-unused 10%`); restic `forget --keep-within 30d --prune --max-unused 10%`. Each side ran
{args.runs} times on fresh copies, alternating; the fastest counts (all: swarm {all_sw} s,
restic {all_rs} s).

| | swarm prune | restic forget --prune |
|---|---|---|
| wall time (whole command) | {sw['s']:.1f} s | {rs['s']:.1f} s |
| of which prune itself (lock, plan, delete, repack) | {sw['inner_s']:.1f} s | |
| peak memory (process tree) | {mb(sw['rss'])} | {mb(rs['rss'])} |
| bytes freed | {mb(sw['freed'])} | {mb(rs['freed'])} |
| backups removed | {sw['removed']} | |
| repacked | {sw['repacked']} pack(s), {mb(sw['rewritten'])} rewritten | |

swarm's repository by kind, before → after: {by_kind}.
restic deduplicates the nightly dumps against each other (content-defined chunks); swarm stores each dump whole
(logical backups are not deduplicated), so it holds and frees more bytes for the same dumps.
"""
    print(md)
    if not args.no_write:
        update_section("prune", md)


if __name__ == "__main__":
    main()
