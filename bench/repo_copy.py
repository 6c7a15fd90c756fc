# ruff: noqa: E402  (the path fix below must run before the imports)
"""Off-site copy of the repository: `swarm admin repo copy` vs `rclone sync`, in one run.

The source: the dev stack's repository (``file://``) holding a database's backups and WAL: the
cluster filled by `swarm dev seed --stores db --size-mb N` (its WAL archived by the dev stack's
archive_command while it was filled), then a logical and a physical backup. The target: a second
SeaweedFS instance (``weed mini``) of the bench's own; each run copies into a fresh bucket there.

1. first copy: `swarm admin repo copy --to cN` (a `[[repository.copies]]` entry per bucket, the
   primary's key) vs `rclone sync <repository dir> target:bucket` (defaults: 4 transfers, 8
   checkers, size + modification time); the runs alternate (swarm, rclone, rclone, swarm);
2. one more day: ~1% of rows changed, a logical backup (the nightly one) and the WAL since, then
   an incremental copy into the same buckets: time and bytes sent.

Bytes sent: swarm's `copied_bytes` (the objects' stored sizes) and rclone's `Transferred` bytes
(from its JSON stats). Neither downloads what it wrote: swarm hashes each object while reading it
from the source (SHA-256, checked against the manifest) and sends the SHA-256 of every request's
bytes (``x-amz-checksum-sha256``), which the server verifies; rclone checks the MD5 the server
returns for each upload.

    .venv/bin/python bench/repo_copy.py [--size-mb 1100] [--reuse]

``--reuse`` keeps a source prepared by an earlier run (bench/.work/copy/prepared.json). Writes the
`copy` section of bench/RESULTS.md.
"""
from __future__ import annotations

import os.path
import sys

# This file is named copy.py: with its directory first on sys.path it would shadow the standard
# library's `copy` (dataclasses and argparse import it). Put the directory last instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import machine_line, update_section
from procmem import Measured, run

from swarm.devstack.seaweed import SeaweedServer
from swarm.storage.s3 import make_client

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORK = ROOT / "bench" / ".work" / "copy"
HOME = WORK / "home"


def env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set on the benchmark machine) would recompile every module at each start
    # of `swarm`: an installed swarm has its bytecode, so the first start writes it here
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG")) and
         k != "PYTHONDONTWRITEBYTECODE"}
    e["SWARM_HOME"] = str(HOME)
    return e


def swarm(*args: str) -> Measured:
    m = run([str(BIN / "swarm"), *args], env=env())
    if m.returncode not in (0,):
        raise SystemExit(f"swarm {' '.join(args)} failed ({m.returncode}): {m.stdout[-1000:]} {m.stderr[-2000:]}")
    return m


def psql(url: str, sql: str) -> str:
    r = subprocess.run(["psql", url, "-XAtqc", sql], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def du(path: Path) -> tuple[int, int]:
    files = [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files), len(files)


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def wait_archived(url: str, timeout: float = 600) -> None:
    """Switch WAL and wait until the archiver has nothing left to push."""
    seg = psql(url, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    psql(url, "SELECT pg_switch_wal()")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = psql(url, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if last >= seg:
            return
        time.sleep(1)
    raise SystemExit(f"WAL {seg} was not archived in {timeout} s")


def prepare(size_mb: float) -> dict[str, Any]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    HOME.mkdir()
    os.chmod(WORK, 0o755)
    info = json.loads(swarm("dev", "up", "--json").stdout)
    url = info["db_url"]
    t = swarm("dev", "seed", "--runs", str(int(size_mb * 2)), "--size-mb", str(size_mb), "--stores", "db", "--json")
    print(f"seeded in {t.seconds:.0f} s (load {loadavg()})", flush=True)
    psql(url, "VACUUM ANALYZE")
    wait_archived(url)
    lg = swarm("admin", "backup", "postgres", "--json")
    ph = swarm("admin", "backup", "postgres", "--physical", "--json")
    wait_archived(url)
    print(f"backups in {lg.seconds:.0f} + {ph.seconds:.0f} s", flush=True)
    prep = {"db_url": url, "db_size": float(psql(url, "SELECT sum(pg_database_size(oid)) FROM pg_database")),
            "seed_s": t.seconds, "repo": str((HOME / "dev" / "repo").resolve())}
    (WORK / "prepared.json").write_text(json.dumps(prep))
    return prep


def one_more_day(url: str) -> dict[str, Any]:
    """~1% of rows changed (events appended for the newest runs, those runs finished), the nightly
    logical backup, and the WAL since archived."""
    n_events = int(psql(url, "SELECT count(*) FROM run_events"))
    n_runs = int(psql(url, "SELECT count(*) FROM runs"))
    add, recent = max(1, n_events // 100), max(1, n_runs // 100)
    psql(url, f"""
        WITH r AS (SELECT id FROM runs ORDER BY started_at DESC LIMIT {recent}),
             src AS (SELECT e.run_id, e.type, e.payload, row_number() OVER () AS n
                     FROM run_events e ORDER BY e.id DESC LIMIT {add})
        INSERT INTO run_events (run_id, seq, ts, type, payload)
        SELECT (SELECT id FROM r OFFSET (src.n % {recent}) LIMIT 1), 2000000 + src.n::int, now(), src.type,
               src.payload FROM src""")
    psql(url, f"UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id IN "
              f"(SELECT id FROM runs ORDER BY started_at DESC LIMIT {recent})")
    b = json.loads(swarm("admin", "backup", "postgres", "--json").stdout)
    wait_archived(url)
    return {"changed_rows": add + recent, "total_rows": n_events + n_runs, "day_backup_bytes": b.get("stored_size")}


_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


def rclone_bytes(stderr: str) -> int:
    """Bytes transferred, from rclone's final JSON stats line (or its text stats)."""
    best = -1
    for line in stderr.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            m = re.search(r"Transferred:\s+([\d.]+)\s*(B|KiB|MiB|GiB|TiB)\s*/", line)
            if m:
                best = max(best, int(float(m.group(1)) * _UNITS[m.group(2)]))
            continue
        stats = d.get("stats") if isinstance(d, dict) else None
        if isinstance(stats, dict) and "bytes" in stats:
            best = max(best, int(stats["bytes"]))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=1100)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--write-only", action="store_true", help="Rewrite the section from the last results.json.")
    args = ap.parse_args()
    if args.write_only:
        write(json.loads((WORK / "results.json").read_text()), {})
        return
    prepared = WORK / "prepared.json"
    if args.reuse and prepared.exists():
        prep = json.loads(prepared.read_text())
        swarm("dev", "up", "--json")
    else:
        prep = prepare(args.size_mb)
    url, repo = prep["db_url"], Path(prep["repo"])
    target_dir = WORK / f"target-{secrets.token_hex(3)}"
    target = SeaweedServer(target_dir, "benchkey", "benchsecret-" + secrets.token_hex(4))
    target.start()
    res: dict[str, Any] = {"db_size": prep["db_size"], "runs": {"first": [], "incr": []}}
    try:
        client = make_client(target.endpoint, target.access_key, target.secret_key)
        pairs = []
        for i in (1, 2):
            sb, rb = f"swarm-{i}-{secrets.token_hex(3)}", f"rclone-{i}-{secrets.token_hex(3)}"
            client.create_bucket(Bucket=sb)
            client.create_bucket(Bucket=rb)
            pairs.append((f"c{i}", sb, rb))
        cfg, orig = HOME / "swarm.toml", WORK / "swarm.toml.orig"
        if not orig.exists():
            shutil.copy2(cfg, orig)
        text = orig.read_text()  # without the copies of an earlier run (--reuse)
        for name, sb, _rb in pairs:
            text += (f'\n[[repository.copies]]\nname = "{name}"\nurl = "s3://{sb}/swarm"\n'
                     f's3_endpoint = "{target.endpoint}"\ns3_access_key = "{target.access_key}"\n'
                     f's3_secret_key = "{target.secret_key}"\ns3_region = "us-east-1"\n')
        cfg.write_text(text)
        base = {k: v for k, v in env().items() if not k.startswith("AWS_")}  # AWS_CA_BUNDLE breaks rclone
        renv = {**base, "RCLONE_CONFIG_DST_TYPE": "s3", "RCLONE_CONFIG_DST_PROVIDER": "Other",
                "RCLONE_CONFIG_DST_ENDPOINT": target.endpoint, "RCLONE_CONFIG_DST_ACCESS_KEY_ID": target.access_key,
                "RCLONE_CONFIG_DST_SECRET_ACCESS_KEY": target.secret_key, "RCLONE_CONFIG_DST_REGION": "us-east-1"}

        def ours(name: str) -> dict[str, Any]:
            load = loadavg()
            m = swarm("admin", "repo", "copy", "--to", name, "--json")
            out = json.loads(m.stdout)["copies"][0]["result"]
            return {"tool": "swarm", "s": m.seconds, "bytes": out["copied_bytes"], "files": out["copied_files"],
                    "rss": m.peak_rss, "load": load}

        def theirs(bucket: str) -> dict[str, Any]:
            load = loadavg()
            m = run(["rclone", "sync", str(repo), f"dst:{bucket}/swarm", "--use-json-log", "--stats", "1000h",
                     "-v"], env=renv)
            if m.returncode != 0:
                raise SystemExit(f"rclone failed: {m.stderr[-2000:]}")
            return {"tool": "rclone", "s": m.seconds, "bytes": rclone_bytes(m.stderr), "rss": m.peak_rss, "load": load}

        src_bytes, src_files = du(repo)
        res["source_bytes"], res["source_files"] = src_bytes, src_files
        print(f"source repository: {mb(src_bytes)} in {src_files} files (load {loadavg()})", flush=True)
        (n1, _s1, r1), (n2, _s2, r2) = pairs
        for phase in ("first", "incr"):
            if phase == "incr":
                res["day"] = one_more_day(url)
                after_bytes, after_files = du(repo)
                res["day"]["repo_growth"] = after_bytes - src_bytes
                res["day"]["repo_new_files"] = after_files - src_files
                print("day", res["day"], flush=True)
            for step in (lambda: ours(n1), lambda: theirs(r1), lambda: theirs(r2), lambda: ours(n2)):
                r = step()
                res["runs"][phase].append(r)
                print(phase, r, flush=True)
    finally:
        target.stop(grace=5)
        shutil.rmtree(target_dir, ignore_errors=True)
        subprocess.run([str(BIN / "swarm"), "dev", "down"], env=env(), capture_output=True, check=False)
    (WORK / "results.json").write_text(json.dumps(res, indent=1))
    write(res, prep)


def write(res: dict[str, Any], prep: dict[str, Any]) -> None:
    rows = []
    verdicts = []
    for phase, label in (("first", "first copy"), ("incr", "incremental copy after one more day")):
        runs = res["runs"][phase]
        o = [r for r in runs if r["tool"] == "swarm"]
        t = [r for r in runs if r["tool"] == "rclone"]
        os_, ts_ = statistics.median(r["s"] for r in o), statistics.median(r["s"] for r in t)
        ob, tb = statistics.median(r["bytes"] for r in o), statistics.median(r["bytes"] for r in t)
        each_o = ", ".join(f"{r['s']:.1f}" for r in o)
        each_t = ", ".join(f"{r['s']:.1f}" for r in t)
        rows.append(f"| {label} | {os_:.1f} s ({each_o}) / {mb(ob)} | "
                    f"{ts_:.1f} s ({each_t}) / {mb(tb)} | **{ts_ / os_:.2f}×** | "
                    f"{max(r['rss'] for r in o) / 1e6:.0f} MB / {max(r['rss'] for r in t) / 1e6:.0f} MB | "
                    f"{', '.join(r['load'] for r in runs)} |")
        verdicts.append((label, os_, ts_))
    day = res["day"]
    src = res["source_bytes"]
    lines = [
        "## Off-site copy of the repository (`bench/repo_copy.py`)",
        "",
        machine_line(),
        "",
        f"Source: the dev stack's `file://` repository, {mb(src)} in {res['source_files']} files, holding a "
        f"logical and a physical backup of a cluster of {mb(res['db_size'])} (sum of `pg_database_size`, "
        "`swarm dev seed --stores db`) and the WAL archived while it was filled. Target: a second SeaweedFS "
        "(`weed mini`) on the same machine, a fresh bucket per run. swarm: `swarm admin repo copy --to NAME` "
        "(the primary's key, 8 objects at a time; each object hashed while read from the source and checked "
        "against its manifest, every PutObject / UploadPart sent with `x-amz-checksum-sha256`, which the "
        "server verifies; nothing downloaded again). rclone: `rclone sync DIR "
        "dst:bucket/swarm` with its defaults (4 transfers, size + modification time, the server's MD5 "
        "checked). Runs alternate swarm, rclone, rclone, swarm; medians, each run in brackets.",
        "",
        f"One more day: {day['changed_rows']:,} of {day['total_rows']:,} rows changed (~1%), a nightly "
        f"logical backup ({mb(day['day_backup_bytes'] or 0)} stored) and its WAL: the repository grew by "
        f"{mb(day['repo_growth'])} in {day['repo_new_files']} files.",
        "",
        "| copy | swarm: time / bytes sent | rclone sync: time / bytes sent | rclone / swarm time | peak RSS "
        "swarm / rclone | load average at each run's start |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    for label, o, t in verdicts:
        if o <= t * 1.05:
            lines.append(f"- {label}: swarm is no slower than rclone ({o:.1f} s vs {t:.1f} s).")
        else:
            lines.append(f"- {label}: swarm is {o / t:.2f}× rclone's time ({o:.1f} s vs {t:.1f} s): see the notes.")
    inc = statistics.median(r["bytes"] for r in res["runs"]["incr"] if r["tool"] == "swarm")
    lines.append(f"- incremental bytes sent by swarm: {mb(inc)} for a repository growth of "
                 f"{mb(day['repo_growth'])} ({inc / max(1, day['repo_growth']):.2f}×): proportional to the change, "
                 "not to the repository.")
    lines += ["", *NOTES]
    update_section("copy", "\n".join(lines))


NOTES = [
    "Notes:",
    "",
    "- Size: the issue asks for a 2 GB database and a week of WAL; on this machine (2 cores shared with six "
    "other sessions) seeding 1.1 GB took 10.6 min at load average 10-12 (13.5 min at about 20 in the earlier "
    "run), so the database is 1.06 GB and the WAL is what its filling archived (the repository holds 775 MB "
    "after compression). Load: the 1-minute load average at each run's start is in the table (8.6-10.98 here); "
    "noise only adds time, and the runs alternate, so the ratio is the figure to read.",
    "- Aim \"no slower than rclone\": **not met**, by 1.66× (first copy) and 2.33× (incremental), down from "
    "2.18× and 2.62×. What changed: swarm no longer downloads each object again from the copy; every "
    "PutObject / UploadPart carries `x-amz-checksum-sha256`, which the server verifies (a wrong one is "
    "refused: `tests/storage/test_s3_checksum.py`), so each object's bytes move twice, as with rclone; and "
    "8 objects go at a time instead of 4. What is left (not measured one by one): (1) a large object is "
    "uploaded one 16 MiB part after the other; the incremental copy is 165 MB in only 17 files, so it has "
    "little to run in parallel; uploading "
    "its parts concurrently would give the incremental copy the parallelism the first copy has; (2) over "
    "plain `http://` botocore also hashes every body for the SigV4 signature (payload signing), so each "
    "byte is hashed three times in Python (source check, x-amz-checksum-sha256, signature) where rclone "
    "computes one MD5 in Go; over `https://` the signature does not hash the payload; (3) a fixed cost per run "
    "(process start-up, listings of both sides, manifests, locks), which weighs on a 10 s incremental copy.",
    "- Peak RSS: each of the eight workers buffers up to a 16 MiB multipart part plus the bytes being "
    "gathered for the next (and boto3's own copies): 805-881 MB on the first copy against rclone's "
    "120-140 MB (611 MB with four workers before).",
    "- Aim \"incremental ∝ change\": **met**: the incremental copy sends exactly the repository's growth (the "
    "day's backup and WAL), nothing of what the copy holds.",
    "- History: 2026-11-27 18:59 UTC at `a0e7f04` (each object read back from the copy and its SHA-256 "
    "compared, 4 workers; load average 17-23): first copy 150.9 s (150.2, 151.7) vs rclone 69.2 s (0.46×), "
    "incremental 38.6 s (36.4, 40.9) vs 14.7 s (0.38×); 775 MB and 165 MB sent, peak RSS 611 / 455 MB.",
]


if __name__ == "__main__":
    main()
