"""Key providers: `wal push` with a KMS key against a key file, and `keys rotate` of 1,000 backups.

1. **wal push**: two file:// repositories made by this code, one sealed with a key file and one
   with an AWS KMS key (moto's server on loopback, ``swarm.devstack.kms``, the same helper as
   ``swarm dev up --kms``). A real PostgreSQL 15 cluster (``archive_command = '/bin/true'``, so
   it keeps its segments) writes real 16 MB segments; each is pushed into both repositories,
   alternating which goes first, timed from process start to exit, two ways:

   * as archive_command runs it: the server user's launcher and its WAL-only key (what a
     deployment runs; no provider call whatever the key);
   * as an operator's ``swarm --config C admin wal push`` with the key-encryption key configured
     (the KMS run then pays ``DescribeKey`` + ``Decrypt`` once per process to unwrap the WAL keys).

2. **keys rotate**: a file:// repository holding 1,000 small backups, each with its own data key
   (so 1,000 + 3 wrapped key files), made through the repository API (``Repository.begin_backup``,
   one 4 KB object, ``commit``): the cheapest real way, since rotation reads and rewrites only the
   key files and never the data. Then ``swarm admin keys rotate`` (the CLI, process start to exit)
   file → file, file → KMS, and KMS → KMS (``ReEncrypt``).

    .venv/bin/python bench/keys.py [--pushes 15] [--backups 1000] [--no-write]

Writes the `keys` section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
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
from wal_push import _chown_tree, _run, _segments

from swarm.config import load_settings
from swarm.crypto.keys import create_key_file
from swarm.crypto.providers import load_provider
from swarm.devstack.kms import DEV_CREDENTIALS, MotoServer
from swarm.repo import Repository
from swarm.services.context import open_repository, server_access
from swarm.services.wal.server_access import remove_server_access
from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user
from swarm.storage.factory import open_store

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def _repo(base: Path, name: str, key_url: str | None) -> tuple[Path, list[str], Path]:
    """A repository sealed with ``key_url`` (None: a new key file): (config, launcher argv, pg_wal dir)."""
    d = base / name
    d.mkdir()
    if key_url is None:
        key_url = f"file://{create_key_file(d / 'keys' / 'repo.key').path}"
    repo_dir = d / "repo"
    repo_dir.mkdir()
    hand_to_server_user(repo_dir)
    config = d / "swarm.toml"
    config.write_text(tomli_w.dumps({"repository": {"url": f"file://{repo_dir}", "key": key_url}}))
    os.environ["SWARM_HOME"] = str(d / "home")
    settings = load_settings(config)
    open_repository(settings, create=True)
    access = server_access(settings)
    _chown_tree(access.directory)
    hand_to_server_user(repo_dir, recursive=True)
    datadir = d / "data"
    (datadir / "pg_wal" / "archive_status").mkdir(parents=True)
    _chown_tree(datadir)
    os.chmod(d, 0o755)
    return config, [str(access.launcher), "--config", str(access.config), "admin", "wal", "push"], \
        datadir / "pg_wal"


def _admin_push(config: Path, path: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(config.parent / "home-admin")
    t0 = time.perf_counter()
    r = subprocess.run([*SWARM, "--config", str(config), "admin", "wal", "push", str(path)], capture_output=True,
                       text=True, env=env, check=False)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"admin wal push failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return dt


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.1f} ms ({min(xs) * 1000:.1f}–{max(xs) * 1000:.1f})"


def bench_push(base: Path, moto: MotoServer, pushes: int) -> str:
    kms_url = moto.key_url(moto.create_key()["KeyId"])
    repos = {"file": _repo(base, "file", None), "kms": _repo(base, "kms", kms_url)}
    cluster = LocalCluster(base / "pg")
    times: dict[tuple[str, str], list[float]] = {(p, m): [] for p in repos for m in ("server", "admin")}
    load = []
    try:
        cluster.init(fast=True, conf={"archive_mode": "on", "archive_command": "'/bin/true'",
                                      "wal_keep_size": "'2GB'", "max_wal_size": "'4GB'"})
        cluster.start()
        segs = _segments(cluster, 2 * pushes + 2)
        for i, seg in enumerate(segs):
            mode = "server" if i % 2 == 0 else "admin"  # alternate the two ways, one segment each
            order = list(repos) if (i // 2) % 2 == 0 else list(reversed(repos))
            for p in order:
                config, argv, pg_wal = repos[p]
                dest = pg_wal / seg.name
                shutil.copyfile(seg, dest)
                _chown_tree(dest)
                dt = _run([*argv, str(dest)]) if mode == "server" else _admin_push(config, dest)
                if mode == "admin":  # what root wrote must stay writable by the server user
                    _chown_tree(config.parent / "repo")
                if i >= 2:  # the first push each way creates the cluster record: left out
                    times[(p, mode)].append(dt)
            load.append(os.getloadavg()[0])
    finally:
        cluster.destroy()
    rows = []
    for mode, what in (("server", "archive_command (server user's launcher, WAL-only key)"),
                       ("admin", "`swarm admin wal push` with the key-encryption key configured")):
        f, k = times[("file", mode)], times[("kms", mode)]
        ratio = statistics.median(k) / statistics.median(f)
        rows.append(f"| {what} | {_fmt(f)} | {_fmt(k)} | {1 / statistics.median(f):.2f} / "
                    f"{1 / statistics.median(k):.2f} | **{ratio:.3f}** |")
    return "\n".join([
        "### `wal push`: KMS key against a key file",
        "",
        f"A PostgreSQL 15 cluster writes real 16 MB segments; each is pushed into a file:// repository sealed with "
        f"a key file and into one sealed with an AWS KMS key (moto's server on loopback), alternating which goes "
        f"first, timed from process start to exit. {len(times[('file', 'server')])} pushes per cell. Load average "
        f"(1 min): {min(load):.2f}–{max(load):.2f} on a machine shared with other work.",
        "",
        "| push | key file: median (min–max) | KMS: median (min–max) | segments/s file / KMS | KMS / file |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Aim: within 10% (ratio at most 1.10). archive_command makes no provider call whichever the key (it seals "
        "to the repository's public WAL key); an operator's push with the key-encryption key configured makes "
        "two KMS calls per process (`DescribeKey`, `Decrypt` of the WAL keys), a few milliseconds against moto on "
        "loopback; against AWS's regional endpoint add the round trips.",
    ])


def _populate(root: Path, key_url: str, n: int) -> float:
    t0 = time.perf_counter()
    repo = Repository.open(open_store(f"file://{root}", create=True), load_provider(key_url), create=True)
    for i in range(n):
        w = repo.begin_backup("state")
        w.put_object("blob", [os.urandom(4096)])
        w.commit({"engine": "bench", "n": i})
    return time.perf_counter() - t0


def _rotate(config: Path, to_url: str) -> tuple[float, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(config.parent / "home")
    t0 = time.perf_counter()
    r = subprocess.run([*SWARM, "--config", str(config), "admin", "keys", "rotate", "--to", to_url, "--json"],
                       capture_output=True, text=True, env=env, check=False)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"keys rotate failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return dt, dict(json.loads(r.stdout))


def bench_rotate(base: Path, moto: MotoServer, n: int) -> str:
    d = base / "rotate"
    d.mkdir()
    root = d / "repo"
    keys = [f"file://{create_key_file(d / 'keys' / f'{name}.key').path}" for name in ("a", "b")]
    kms = [moto.key_url(moto.create_key()["KeyId"]) for _ in range(2)]
    made = _populate(root, keys[0], n)
    rows = []
    for label, old, new in (("file → file", keys[0], keys[1]), ("file → KMS", keys[1], kms[0]),
                            ("KMS → KMS (`ReEncrypt`)", kms[0], kms[1])):
        config = d / "swarm.toml"
        config.write_text(tomli_w.dumps({"repository": {"url": f"file://{root}", "key": old}}))
        took, out = _rotate(config, new)
        rows.append(f"| {label} | {out['files']} | {out['rewrapped']} | {took:.2f} s | {out['seconds']:.2f} s |")
    return "\n".join([
        f"### `keys rotate` of a repository with {n:,} backups",
        "",
        f"{n:,} small backups (one 4 KB object each, each with its own data key, made through the repository API "
        f"in {made:.1f} s: rotation reads and rewrites only the key files, never the data), then "
        "`swarm admin keys rotate --to URL` run three times in a row on the same repository. KMS is moto's server "
        "on loopback (one call per key file: `Encrypt` from a key file, one `ReEncrypt` between KMS keys).",
        "",
        "| rotation | key files | rewrapped | command (process start to exit) | of which rotating |",
        "|---|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=15)
    ap.add_argument("--backups", type=int, default=1000)
    ap.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = ap.parse_args()
    os.environ.update(DEV_CREDENTIALS)
    base = Path(tempfile.mkdtemp(prefix="swarm-bench-keys-", dir="/work" if Path("/work").is_dir() else None))
    base.chmod(0o755)
    moto = MotoServer(base / "moto")
    try:
        moto.start()
        sections = [bench_push(base, moto, args.pushes), bench_rotate(base, moto, args.backups)]
    finally:
        moto.stop()
        remove_server_access(under=base)
        shutil.rmtree(base, ignore_errors=True)
    md = "\n\n".join([f"## Key providers: `wal push` with KMS, `keys rotate` of {args.backups:,} backups\n\n"
                      f"{machine_line()}\n\nScript: `bench/keys.py`.", *sections])
    print(md)
    if not args.no_write:
        update_section("keys", md)


if __name__ == "__main__":
    main()
