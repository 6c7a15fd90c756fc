"""`wal push` latency as PostgreSQL sees it: this code against another checkout (the baseline), alternating.

A real PostgreSQL 15 cluster (started like tests/physical/conftest.py ``make_env``, with
``archive_command = '/bin/true'`` so it keeps its segments for us) writes real WAL; each
segment is copied into two stand-in data directories (one per code version, each with its
own push spool and its own file:// repository) and pushed by running the server user's
launcher exactly as archive_command does (``<launcher> --config C admin wal push
<datadir>/pg_wal/<segment>``, which goes through ``swarm.services.wal.fastpath``), as the
server user when run as root. Every round pushes one new segment with each version, in
alternating order, and times the whole process (interpreter start included), so both
versions see the same machine load. The first push of each version (creating the
repository's cluster record and WAL key) is reported apart from the steady state.

    .venv/bin/python bench/wal_push.py --baseline /path/to/other/checkout [--pushes 25] [--s3]

Writes the `walpush` section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tomli_w
from _results import machine_line, update_section

from swarm.config import load_settings
from swarm.crypto.keys import create_key_file
from swarm.services.context import server_access
from swarm.services.wal.server_access import remove_server_access
from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user, running_as_root

HERE = Path(__file__).resolve().parent.parent


def _chown_tree(path: Path) -> None:
    if not running_as_root():
        return
    pw = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def _version(base: Path, name: str, src: Path, s3: dict[str, str] | None = None) -> tuple[list[str], Path]:
    """A repository, config and launcher running the code in ``src``; returns (argv prefix, pg_wal dir)."""
    d = base / name
    d.mkdir()
    key = create_key_file(d / "keys" / "repo.key")
    repo_dir = d / "repo"
    repo_dir.mkdir()
    hand_to_server_user(repo_dir)
    config = d / "swarm.toml"
    repo_doc = {"url": f"file://{repo_dir}", "key": f"file://{key.path}"}
    if s3:
        repo_doc.update(s3, url=f"{s3['url']}/{name}")
    config.write_text(tomli_w.dumps({"repository": repo_doc}))
    os.environ["SWARM_HOME"] = str(d / "home")
    settings = load_settings(config)
    # the repository is created by the first push, with the format of the code under test
    access = server_access(settings)
    launcher = access.directory / "launcher-bench"
    text = access.launcher.read_text().splitlines()
    # run the code of ``src`` (ahead of the editable install of this checkout)
    text.insert(1, f"import sys; sys.path.insert(0, {str(src)!r})")
    launcher.write_text("\n".join(text) + "\n")
    launcher.chmod(0o755)
    _chown_tree(access.directory)
    datadir = d / "data"
    (datadir / "pg_wal" / "archive_status").mkdir(parents=True)
    _chown_tree(d / "data")
    os.chmod(d, 0o755)
    return [str(launcher), "--config", str(access.config), "admin", "wal", "push"], \
        datadir / "pg_wal"


def _run(argv: list[str]) -> float:
    kw: dict[str, object] = {}
    if running_as_root():
        pw = pwd.getpwnam("postgres")
        kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd="/", **kw)  # type: ignore[call-overload]
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"push failed ({r.returncode}): {' '.join(argv)}\n{r.stdout}\n{r.stderr}")
    return float(dt)


def _segments(cluster: LocalCluster, count: int) -> list[Path]:
    """Have the server write ``count`` new segments (with some rows in each); return their paths."""
    cluster.psql("CREATE TABLE IF NOT EXISTS bench_wal (id bigserial, payload text)")
    out = []
    for _ in range(count):
        cluster.psql("INSERT INTO bench_wal (payload) SELECT md5(g::text) FROM generate_series(1, 2000) g")
        name = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip()
        cluster.psql("SELECT pg_switch_wal()")
        out.append(cluster.datadir / "pg_wal" / name)
    return out


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.1f} ms ({min(xs) * 1000:.1f}–{max(xs) * 1000:.1f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, required=True, help="checkout of the code to compare with")
    ap.add_argument("--pushes", type=int, default=25)
    ap.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    ap.add_argument("--s3", action="store_true", help="also (after the file:// run) on a local SeaweedFS S3")
    args = ap.parse_args()
    sections = [run(args.baseline, args.pushes, None)]
    if args.s3:
        sections.append(run(args.baseline, args.pushes, "s3"))
    md = "\n\n".join([f"## `wal push` latency (archive_command)\n\n{machine_line()}", *sections])
    print(md)
    if not args.no_write:
        update_section("walpush", md)


def run(baseline: Path, pushes: int, kind: str | None) -> str:
    # byte-compile both trees first, as an installed package is: the server user cannot write
    # __pycache__ in a root-owned checkout, so a stale .pyc would be recompiled on every push
    import compileall

    for src in (baseline.resolve() / "src", HERE / "src"):
        compileall.compile_dir(str(src), quiet=1)
    base = Path(tempfile.mkdtemp(prefix="swarm-bench-walpush-", dir="/work" if Path("/work").is_dir() else None))
    base.chmod(0o755)
    seaweed = None
    cluster: LocalCluster | None = None
    s3: dict[str, str] | None = None
    times: dict[str, list[float]] = {"baseline": [], "this": []}
    first: dict[str, float] = {}
    load = []
    try:
        if kind == "s3":
            import secrets

            from swarm.devstack.seaweed import SeaweedServer
            from swarm.storage.s3 import make_client

            seaweed = SeaweedServer(base / "seaweed", "benchkey", "benchsecret-" + secrets.token_hex(4))
            seaweed.start()
            make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key).create_bucket(Bucket="walpush")
            s3 = {"url": "s3://walpush", "s3_endpoint": seaweed.endpoint, "s3_access_key": seaweed.access_key,
                  "s3_secret_key": seaweed.secret_key}
        versions = {"baseline": _version(base, "baseline", baseline.resolve() / "src", s3),
                    "this": _version(base, "this", HERE / "src", s3)}
        cluster = LocalCluster(base / "pg")
        cluster.init(fast=True, conf={"archive_mode": "on", "archive_command": "'/bin/true'",
                                      "wal_keep_size": "'2GB'", "max_wal_size": "'4GB'"})
        cluster.start()
        segs = _segments(cluster, pushes + 1)
        for i, seg in enumerate(segs):
            order = list(versions) if i % 2 == 0 else list(reversed(versions))
            for v in order:
                argv, pg_wal = versions[v]
                dest = pg_wal / seg.name
                shutil.copyfile(seg, dest)
                _chown_tree(dest)
                dt = _run([*argv, str(dest)])
                if i == 0:
                    first[v] = dt
                else:
                    times[v].append(dt)
            load.append(os.getloadavg()[0])
    finally:
        if cluster is not None:
            cluster.destroy()
        if seaweed is not None:
            seaweed.stop(grace=5)
        remove_server_access(under=base)  # the server user's key copies made for this run
        shutil.rmtree(base, ignore_errors=True)
    ratio = statistics.median(times["this"]) / statistics.median(times["baseline"])
    rev = subprocess.run(["git", "-C", str(baseline), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False).stdout.strip() or "?"
    where = ("an S3 repository on a local SeaweedFS (same machine, so the figures show the request count more "
             "than network latency)") if kind == "s3" else "a file:// repository on local disk"
    return "\n".join([
        f"### {'S3 (SeaweedFS)' if kind == 's3' else 'file://'}",
        "",
        f"Script: `bench/wal_push.py`. A PostgreSQL 15 cluster writes real 16 MB segments; each is pushed by the "
        f"server user's launcher exactly as archive_command runs it (process start to exit, fast path "
        f"`swarm.services.wal.fastpath`), into {where}, once by the baseline "
        f"(`{rev}`, before the shared lock) and once by this code, alternating which goes first (both trees "
        f"byte-compiled first). "
        f"{len(times['this'])} steady-state pushes each (the first push of each, which creates the repository, the "
        f"cluster record and the WAL key, is listed apart). Load average (1 min) during the run: "
        f"{min(load):.2f}–{max(load):.2f} on a machine shared with other work.",
        "",
        "| code | first push | steady push: median (min–max) |",
        "|---|---|---|",
        f"| baseline `{rev}` | {first['baseline'] * 1000:.1f} ms | {_fmt(times['baseline'])} |",
        f"| this (WAL lease) | {first['this'] * 1000:.1f} ms | {_fmt(times['this'])} |",
        "",
        f"Median ratio this / baseline: **{ratio:.3f}** (aim: at most 1.10).",
    ])


if __name__ == "__main__":
    main()
