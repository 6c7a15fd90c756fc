"""Benchmark: object replication and point-in-time restore, swarm vs rclone, in one run.

Starts two SeaweedFS servers (primary and DR) under a temp directory, fills a versioned bucket
with N objects (default 10,000) of mixed sizes, and measures, each tool in its own process
(wall time and peak RSS = VmHWM):

1. full replication to an empty DR bucket on the other server: ``swarm`` replicate vs
   ``rclone sync --checksum`` (same --transfers/--checkers as swarm's workers);
2. a re-run with nothing changed, then an incremental run after 10% of the keys were
   overwritten (each tool on its own DR bucket);
3. point-in-time restore of the whole bucket to T after 20% were overwritten and 10% deleted:
   into an empty bucket (swarm ``restore_at --to-bucket`` vs ``rclone copy --s3-version-at T``),
   and swarm in place (only the changed keys);
4. memory versus object count: ``replication check`` (both listings, every key) over a fifth
   of the keys and over all of them.

Usage: .venv/bin/python bench/objects.py [--n 10000] [--workers 8] [--reps 3] [--no-write]
Writes the "objects" section of bench/RESULTS.md unless --no-write.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def sizes(n: int, rng: random.Random) -> list[int]:
    """90% 1–40 KB (median ~20 KB), 9% 40 KB–1 MB, 1% 1–5 MB."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.90:
            out.append(rng.randint(1_000, 40_000))
        elif r < 0.99:
            out.append(rng.randint(40_000, 1_000_000))
        else:
            out.append(rng.randint(1_000_000, 5_000_000))
    return out


# ---- worker mode: one swarm operation in this process, result as JSON on stdout -------------------

def worker(op: str, spec: dict[str, Any]) -> None:
    from swarm.clock import parse_iso
    from swarm.services.objects.replicate import check_replication, replicate
    from swarm.services.objects.restore import restore_at
    from swarm.sources.objects import Bucket, BucketConfig

    def b(d: dict[str, Any]) -> Bucket:
        return Bucket(BucketConfig(**d), pool=spec["workers"] * 2 + 4)

    if op == "replicate":
        r = replicate(b(spec["src"]), b(spec["dst"]), workers=spec["workers"]).to_dict()
    elif op == "check":
        r = check_replication(b(spec["src"]), b(spec["dst"]), prefix=spec.get("prefix", "")).to_dict()
        r.pop("differences")
    elif op == "restore":
        r = restore_at(b(spec["src"]), b(spec["dst"]), parse_iso(spec["at"]), workers=spec["workers"]).to_dict()
        r.pop("actions")
    else:
        raise SystemExit(f"unknown op {op}")
    r.pop("failed", None)
    sys.stdout.write(json.dumps(r, default=str))


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS MiB, stdout).

    Peak RSS is the child's own VmHWM, polled from /proc every 20 ms until it exits (it only
    grows, so the last reading is the peak to within 20 ms). ``wait4``'s ru_maxrss is not used:
    it counts the parent's pages at fork time, before the exec.
    """
    t0 = time.monotonic()
    hwm = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {etext[-2000:]}")
    return wall, hwm / 1024, text


def swarm(op: str, spec: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    wall, rss, out = measured([sys.executable, __file__, "--worker", op, json.dumps(spec)])
    return wall, rss, json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("OP", "SPEC"))
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[0], json.loads(a.worker[1]))
        return
    rclone = shutil.which("rclone")
    if not rclone:
        raise SystemExit("rclone is not installed: apt-get install -y rclone")
    rclone_version = subprocess.run([rclone, "version"], capture_output=True, text=True, check=True
                                    ).stdout.splitlines()[0]

    from swarm.devstack.seaweed import SeaweedServer
    from swarm.storage.s3 import make_client

    base = Path(tempfile.mkdtemp(prefix="swarm-bench-objects-"))
    prim = SeaweedServer(base / "primary", "benchkey", secrets.token_hex(8))
    dr = SeaweedServer(base / "dr", "benchdr", secrets.token_hex(8))
    try:
        prim.start()
        dr.start()
        run(a, rclone, rclone_version, prim, dr, base, make_client)
    finally:
        prim.stop(grace=5)
        dr.stop(grace=5)
        shutil.rmtree(base, ignore_errors=True)


def run(a: argparse.Namespace, rclone: str, rclone_version: str, prim: Any, dr: Any, base: Path,
        make_client: Any) -> None:
    n, w, reps = a.n, a.workers, a.reps
    pc = make_client(prim.endpoint, prim.access_key, prim.secret_key, pool=32)
    dc = make_client(dr.endpoint, dr.access_key, dr.secret_key, pool=32)

    def mkbucket(c: Any, name: str) -> str:
        c.create_bucket(Bucket=name)
        c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    mkbucket(pc, "bench")

    def cfg(server: Any, bucket: str) -> dict[str, Any]:
        return {"bucket": bucket, "endpoint": server.endpoint, "access_key": server.access_key,
                "secret_key": server.secret_key}

    rc_conf = base / "rclone.conf"
    rc_conf.write_text("")
    # rclone's S3 backend refuses AWS_CA_BUNDLE with its own transport; the endpoints are plain http
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    for name, s in (("PRIM", prim), ("DR", dr)):
        env.update({f"RCLONE_CONFIG_{name}_TYPE": "s3", f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
                    f"RCLONE_CONFIG_{name}_ENDPOINT": s.endpoint, f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": s.access_key,
                    f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": s.secret_key,
                    f"RCLONE_CONFIG_{name}_REGION": "us-east-1", f"RCLONE_CONFIG_{name}_FORCE_PATH_STYLE": "true"})
    rc_common = ["--config", str(rc_conf), "--transfers", str(w), "--checkers", str(w), "--s3-no-check-bucket"]

    def rc(*args: str) -> tuple[float, float]:
        wall, rss, _ = measured([rclone, *args, *rc_common], env)
        return wall, rss

    rng = random.Random(42)
    sz = sizes(n, rng)
    keys = [f"pipeline_runs/r{i % 500:03d}/{['models', 'reports', 'audit', 'conversations'][i % 4]}/obj-{i:05d}.bin"
            for i in range(n)]
    blob = os.urandom(6_000_000)

    def body(i: int, gen: int) -> bytes:
        off = (i * 7919 + gen * 104729) % (len(blob) - sz[i])
        return gen.to_bytes(4, "big") + blob[off:off + sz[i] - 4]

    def put_all(idx: list[int], gen: int) -> None:
        def one(i: int) -> None:
            pc.put_object(Bucket="bench", Key=keys[i], Body=body(i, gen), ContentType="application/octet-stream")
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, idx))

    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    put_all(list(range(n)), 0)
    seed_s = time.monotonic() - t0
    total = sum(sz)
    print(f"seeded {n} objects, {total / 1e6:.0f} MB in {seed_s:.1f} s", flush=True)

    results: dict[str, list[tuple[float, float]]] = {}

    loads = [load0]

    def rec(name: str, value: tuple[float, float]) -> None:
        results.setdefault(name, []).append(value)
        loads.append(os.getloadavg()[0])
        print(name, f"{value[0]:.1f} s {value[1]:.0f} MiB", flush=True)

    def both(name: str, sw: Any, rcl: Any, rep: int) -> None:
        """Run the pair; the order alternates between repetitions (cache and noise fairness)."""
        for which in (("rclone", "swarm") if rep % 2 == 0 else ("swarm", "rclone")):
            rec(f"{name}_{which}", rcl() if which == "rclone" else sw())

    spec = {"src": cfg(prim, "bench"), "workers": w}

    def sw_replicate(bucket: str, expect: int | None) -> tuple[float, float]:
        wall, rss, r = swarm("replicate", {**spec, "dst": cfg(dr, bucket)})
        assert r["ok"] and (expect is None or r["versions_copied"] == expect), r
        return wall, rss

    # 1. full replication, each repetition into fresh DR buckets
    for rep in range(reps):
        dsw, drc = mkbucket(dc, f"dr-swarm-{rep}"), mkbucket(dc, f"dr-rclone-{rep}")
        both("full", lambda d=dsw: sw_replicate(d, n),
             lambda d=drc: rc("sync", "--checksum", "PRIM:bench", f"DR:{d}"), rep)
    # 2a. nothing changed; 2b. 10% overwritten per repetition (both tools then copy the same change)
    for rep in range(reps):
        both("noop", lambda: sw_replicate("dr-swarm-0", 0),
             lambda: rc("sync", "--checksum", "PRIM:bench", "DR:dr-rclone-0"), rep)
    for rep in range(reps):
        put_all(rng.sample(range(n), n // 10), 10 + rep)
        both("inc", lambda: sw_replicate("dr-swarm-0", n // 10),
             lambda: rc("sync", "--checksum", "PRIM:bench", "DR:dr-rclone-0"), rep)
    wall, rss, chk = swarm("check", {**spec, "dst": cfg(dr, "dr-swarm-0")})
    assert chk["in_sync"], chk
    rec("check_all", (wall, rss))
    wall, rss, chk_part = swarm("check", {**spec, "dst": cfg(dr, "dr-swarm-0"), "prefix": "pipeline_runs/r0"})
    rec("check_part", (wall, rss))
    part_keys = chk_part["counts"].get("source_keys", 0)
    # 3. point in time
    time.sleep(1.2)
    at = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.2)
    order = list(range(n))
    rng.shuffle(order)
    over, gone = order[: n // 5], order[n // 5: n // 5 + n // 10]
    put_all(over, 2)

    def delete(i: int) -> None:
        pc.delete_object(Bucket="bench", Key=keys[i])
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(delete, gone))
    at_s = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    # version_at on the source remote only (the global flag would make the destination read-only too)
    for k in [k for k in env if k.startswith("RCLONE_CONFIG_PRIM_")]:
        env[k.replace("_PRIM_", "_PRIMAT_")] = env[k]
    env["RCLONE_CONFIG_PRIMAT_VERSION_AT"] = at_s

    def sw_pitr(bucket: str, expect: int) -> tuple[float, float]:
        wall, rss, r = swarm("restore", {**spec, "dst": cfg(prim, bucket), "at": at_s})
        assert r["ok"] and r["plan"]["copy"] == expect, r
        return wall, rss

    for rep in range(reps):
        psw, prc = mkbucket(pc, f"pitr-swarm-{rep}"), mkbucket(pc, f"pitr-rclone-{rep}")
        both("pitr", lambda b=psw: sw_pitr(b, n),
             lambda b=prc: rc("copy", "--server-side-across-configs", "PRIMAT:bench", f"PRIM:{b}"), rep)
    rec("pitr_inplace", sw_pitr("bench", len(over) + len(gone)))

    # correctness of the rclone result too (same keys, sizes and ETags as the swarm result)
    def listing(bucket: str) -> dict[str, tuple[int, str]]:
        out = {}
        for page in pc.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            out.update({o["Key"]: (o["Size"], o["ETag"]) for o in page.get("Contents", [])})
        return out
    same = listing("pitr-rclone-0") == listing("pitr-swarm-0") == listing("bench")
    report(a, results, n, total, seed_s, rclone_version, same, part_keys, loads)


def report(a: argparse.Namespace, r: dict[str, list[tuple[float, float]]], n: int, total: int, seed_s: float,
           rclone_version: str, same: bool, part_keys: int, loads: list[float]) -> None:
    def cell(runs: list[tuple[float, float]]) -> tuple[str, float]:
        times = [t for t, _ in runs]
        med = statistics.median(times)
        spread = f" ({min(times):.1f}–{max(times):.1f})" if len(times) > 1 else ""
        return f"{med:.1f} s{spread} / {max(m for _, m in runs):.0f} MiB", med

    def row(name: str, key: str, note: str = "") -> str:
        sw_runs = r[f"{key}_swarm"] if f"{key}_swarm" in r else r[key]
        sw, sw_med = cell(sw_runs)
        if f"{key}_rclone" not in r:
            return f"| {name} | {sw} | – | – | – | {note} |"
        rc, rc_med = cell(r[f"{key}_rclone"])
        best = min(t for t, _ in r[f"{key}_rclone"]) / min(t for t, _ in sw_runs)
        return f"| {name} | {sw} | {rc} | **{rc_med / sw_med:.2f}×** | {best:.2f}× | {note} |"

    from _results import machine_line, update_section

    md = f"""## Objects: replication and point-in-time restore (`bench/objects.py`)

{machine_line()}

{n:,} objects, {total / 1e6:.0f} MB in one versioned SeaweedFS bucket (sizes: 90% 1–40 KB, 9% 40 KB–1 MB,
1% 1–5 MB; seeded in {seed_s:.0f} s). Primary and DR are two `weed mini` servers on this machine (so
replication streams GET → PUT between endpoints; PITR copies are server-side within the primary).
Both tools used {a.workers} parallel transfers (`rclone --transfers {a.workers} --checkers {a.workers}`);
baseline {rclone_version} (Debian), `sync --checksum` (size + MD5 ETag from the listing, no per-object HEAD).
Each step ran as its own process, {a.reps} times, the two tools alternating which goes first; times are
median (min–max), memory is the highest peak RSS (VmHWM polled every 20 ms). Ratios = rclone / swarm
(>1: swarm faster), of the medians and of the best runs. Both tools are timed the same way, as a whole
process from exec to exit (so Python's start-up and imports count against swarm, as the Go binary's
start counts against rclone). The machine was shared with other work (1-minute load average
{loads[0]:.1f} on 2 cores at the start, {statistics.median(loads):.1f} median and {max(loads):.1f} highest
when sampled after each step), which only ever adds time, so single runs varied widely: the best-run
ratio is the less noisy comparison; read the ranges.

| step | swarm (time / peak RSS) | rclone (time / peak RSS) | ratio of medians | ratio of best runs | note |
|---|---|---|---|---|---|
{row("full replication to an empty DR bucket", "full", "swarm also writes the source version id into metadata")}
{row("re-run, nothing changed", "noop", "source version listing + DR latest-entries listing, nothing else")}
{row("incremental, 10% overwritten", "inc", f"{n // 10} versions copied per run")}
{row("PITR of the whole bucket into an empty bucket", "pitr",
     "after 20% overwritten + 10% deleted; rclone `copy` from a remote with `version_at = T`, "
     "`--server-side-across-configs`")}
{row("PITR in place (swarm only)", "pitr_inplace", f"{n // 5 + n // 10} keys changed back, the rest skipped")}
{row("replication check, all keys", "check_all", f"{n} keys, both listings")}
{row("replication check, a fifth of the keys", "check_part", f"{part_keys} keys: memory vs count")}

Results identical (PITR keys, sizes and ETags: swarm = rclone = bucket after in-place restore): **{same}**.
What differs in the work done: swarm replicates every *version* and delete marker (rclone sync copies
only the latest object and deletes on DR) and records the source version id in DR metadata;
rclone cannot restore in place, so the like-for-like PITR row restores into an empty bucket.
swarm's data path for cross-endpoint and server-side copies and for version listings is a lean SigV4
client (`swarm/sources/objects/fastpath.py`); with boto3 for everything, an earlier run of this script
measured 0.59× (full), 0.48× (incremental) and 0.78× (PITR). A pass reads the DR side with
`ListObjectsV2` (latest entries) while every source key has one version, and with `ListObjectVersions`
only from a key that needs its DR history (`services/objects/listing.py`); SeaweedFS answers a version
page at about five times the cost of a latest-entries page, and concurrent version listings of one
bucket (split by prefix or key range) ran 1.5–2.5× *slower* than one sequential listing here, so the
source's version listing stays one sequential stream, one page read ahead.

History (ratio of medians, rclone / swarm; full, nothing changed, incremental, PITR): 2026-11-24
`836a77f` 1.03×, 1.13×, 1.01×, 1.62×; a later rerun before this change 0.97×, 0.79× (3.6 s against
2.8 s), 0.98×, – (10,000 objects); 2026-11-27 19:08 `9aa719c`, 2,000 objects at load 15–24: 0.95×,
1.07×, 0.92×, 2.02×; 2026-11-28 00:16 `2d76f51`, 2,000 objects, 5 runs each at load 3.7–6.7: 1.13×,
1.74×, 1.13×, 1.69× (swarm 6.6 s, 0.8 s, 1.7 s, 5.1 s).
"""
    print(md)
    if not a.no_write:
        update_section("objects", md)


if __name__ == "__main__":
    main()
