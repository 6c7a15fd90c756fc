"""DR drill (issue 14) and whole-stack restore (issue 11) on the dev stack, against the seed's manual procedure.

One run, on one machine:

1. a dev stack of its own (``swarm dev up`` with ``SWARM_HOME`` = ``--home``, default
   ``/var/tmp/swarm-bench-drill``, so it never meets anyone's dev stack), filled with
   * a database of ``--size-mb`` MB (``swarm dev seed --stores db --runs N --size-mb ...``),
   * ``--objects`` objects in the artefact bucket under ``pipeline_runs/<run id>/`` (sizes from
     bench/objects.py: 90% 1-40 KB, 9% 40 KB-1 MB, 1% 1-5 MB), each recorded in ``run_artefacts``
     as the platform does, so the cross-store check has something to check,
   * a state directory of ``--state-mb`` MB built by bench/state.py's ``generate`` (many small
     JSON files in batch run dirs, four JSONL files of 50-200 MB), its run dirs then renamed to
     real run ids, the large files moved into four run dirs and ``cron/jobs.json`` made to name
     real pipelines (the cross-store check fails a state directory naming runs that don't exist);
2. ``swarm admin backup set`` (timed);
3. ``--reps`` times, alternating which side goes first:
   * **swarm**: ``swarm admin drill --latest --json``: RTO per phase and total, RPO, the ladder;
   * **the seed's manual procedure**: ``pg_restore`` of a ``pg_dump -Fc`` file (taken once,
     before, untimed as a restore) into a fresh database; an ``aws s3 sync``-style copy of the
     bucket into a new bucket of the same SeaweedFS with ``rclone sync`` (server-side copies);
     ``tar xzf`` of the state directory's ``tar czf`` tarball (taken once, before); then
     ``swarm api serve`` pointed at the restored database and one ``curl .../api/v1/pipelines``
     (time from the server's launch to the answer; its ``total`` is checked). Run one after the
     other, as the seed's runbook does;
4. the whole-stack restore of issue 11 once: ``swarm dev scratch NAME`` then
   ``swarm admin restore set ID --target-db ... --target-bucket ... --target-state ... --force``
   (the three stores one after the other, then the integrity check: timed as a whole; the drill's
   database / objects / state phases are the same restores, run at once).

    .venv/bin/python bench/drill.py                 # full size, writes bench/RESULTS.md
    .venv/bin/python bench/drill.py --quick         # small sizes, prints only

Writes the ``drill`` section of bench/RESULTS.md (not with ``--quick``) after the first pair of
runs, after the restore set and after every later pair, so an interrupted run leaves the figures
it has. The stack is taken down (``swarm dev down --purge``) and ``--home`` removed at the end,
also on failure. A kill -9 leaves the stack running under ``--home`` (and a drill's scratch
cluster, if one was running): the next run of this script takes it down and removes ``--home``
first (``swarm admin drill cleanup`` for a drill's leftovers, then ``swarm dev down --purge``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, update_section

from objects import sizes as object_sizes
from state import generate as generate_state

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SWARM = str(BIN / "swarm")
PGBIN = Path("/usr/lib/postgresql/15/bin")
CLASSES = ("models", "reports", "audit", "conversations")
loads: list[float] = []


# ---------------------------------------------------------------- helpers
def note_load() -> None:
    loads.append(os.getloadavg()[0])


def env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    e["SWARM_HOME"] = str(home)
    e.update(extra or {})
    return e


def timed(cmd: list[str], env_: dict[str, str] | None = None, *, ok_codes: tuple[int, ...] = (0,),
          what: str = "") -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env_, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if r.returncode not in ok_codes:
        raise SystemExit(f"{what or ' '.join(cmd[:4])} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n"
                         f"{r.stderr[-3000:]}")
    return took, r


def swarm(home: Path, *args: str, ok_codes: tuple[int, ...] = (0,),
          extra: dict[str, str] | None = None) -> tuple[float, Any, int]:
    """``swarm ARGS --json``: (seconds, parsed stdout, exit code)."""
    took, r = timed([SWARM, *args, "--json"], env(home, extra), ok_codes=ok_codes, what=f"swarm {' '.join(args)}")
    print(f"  swarm {' '.join(args)}: {took:.1f} s (exit {r.returncode})", flush=True)
    return took, (json.loads(r.stdout) if r.stdout.strip() else None), r.returncode


def psql(url: str, sql: str) -> str:
    return subprocess.run([str(PGBIN / "psql"), "-X", "-Atc", sql, url], capture_output=True, text=True,
                          check=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 10e6 else f"{n / 1e6:,.1f} MB"


# ---------------------------------------------------------------- the deployment
def fill_objects(info: dict[str, Any], run_ids: list[str], n: int, seed: int) -> tuple[int, float]:
    """``n`` objects under ``pipeline_runs/<run id>/<class>/``, each recorded in ``run_artefacts``
    (object first, row after, as the platform does). Returns (bytes, seconds)."""
    from swarm.platform.seed import record_artefacts
    from swarm.storage.s3 import make_client

    rng = random.Random(seed)
    sz = object_sizes(n, rng)
    blob = rng.randbytes(6_000_000)
    client = make_client(info["objects_endpoint"], info["objects_access_key"], info["objects_secret_key"])
    items = []
    for i in range(n):
        run_id = run_ids[i % len(run_ids)]
        off = (i * 7919) % (len(blob) - sz[i])
        body = i.to_bytes(4, "big") + blob[off:off + sz[i] - 4]
        items.append((run_id, f"pipeline_runs/{run_id}/{CLASSES[i % 4]}/obj-{i:05d}.bin", body))
    t0 = time.monotonic()

    def put(item: tuple[str, str, bytes]) -> None:
        client.put_object(Bucket=info["objects_bucket"], Key=item[1], Body=item[2],
                          ContentType="application/octet-stream")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, items))
    record_artefacts(info["db_url"], items)
    return sum(sz), time.monotonic() - t0


def fill_state(state_dir: Path, size_mb: float, seed: int, run_ids: list[str], pipelines: list[str]) -> dict[str, Any]:
    """bench/state.py's directory, made consistent with the database: run dirs named after real runs,
    the large files inside four run dirs, cron jobs naming real pipelines."""
    gen = state_dir.parent / "state-generated"
    shutil.rmtree(gen, ignore_errors=True)
    info = generate_state(gen, size_mb, seed)
    batch = gen / "batch"
    runs = sorted(p for p in batch.iterdir() if p.name.startswith("run-"))
    if len(runs) + 4 > len(run_ids):
        raise SystemExit(f"the state directory has {len(runs)} run dirs but the database only {len(run_ids)} runs: "
                         "raise --runs")
    for k, p in enumerate(runs):
        p.rename(batch / run_ids[k])
    for k, big in enumerate(sorted((batch / "archive").iterdir())):
        d = batch / run_ids[len(runs) + k]
        d.mkdir()
        big.rename(d / big.name)
    (batch / "archive").rmdir()
    jobs = json.loads((gen / "cron" / "jobs.json").read_text())
    for i, job in enumerate(jobs["jobs"]):
        job["pipeline"] = pipelines[i % len(pipelines)]
    (gen / "cron" / "jobs.json").write_text(json.dumps(jobs, indent=1))
    if state_dir.exists():  # `dev up` made empty cron/ and batch/
        if any(p.is_file() for p in state_dir.rglob("*")):
            raise SystemExit(f"{state_dir} holds files already")
        shutil.rmtree(state_dir)
    gen.rename(state_dir)
    return info


# ---------------------------------------------------------------- the two sides
def drill(home: Path) -> dict[str, Any]:
    took, d, rc = swarm(home, "admin", "drill", "--latest", ok_codes=(0, 1))
    d["wall_s"], d["exit"] = took, rc
    print("  drill: " + json.dumps({"verdict": d["verdict"], "rto_s": d["rto_s"], "rpo_s": d["rpo_s"],
                                    "phases": {p["name"]: (p["started_s"], p["seconds"], p["ok"])
                                               for p in d["phases"]},
                                    "failed_check": d.get("failed_check"), "error": d.get("error")}), flush=True)
    return d


class Manual:
    """The seed's manual procedure, step by step, into fresh targets each time."""

    def __init__(self, home: Path, info: dict[str, Any], work: Path) -> None:
        self.home, self.info, self.work = home, info, work
        self.base = info["db_url"].rsplit("/", 1)[0]
        self.dump = work / "swarm.dump"
        self.tarball = work / "state.tar.gz"
        self.rc_env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.rc_env.update({"RCLONE_CONFIG_PROD_TYPE": "s3", "RCLONE_CONFIG_PROD_PROVIDER": "Other",
                            "RCLONE_CONFIG_PROD_ENDPOINT": info["objects_endpoint"],
                            "RCLONE_CONFIG_PROD_ACCESS_KEY_ID": info["objects_access_key"],
                            "RCLONE_CONFIG_PROD_SECRET_ACCESS_KEY": info["objects_secret_key"],
                            "RCLONE_CONFIG_PROD_REGION": "us-east-1", "RCLONE_CONFIG_PROD_FORCE_PATH_STYLE": "true"})
        (work / "rclone.conf").write_text("")
        self.rc_common = ["--config", str(work / "rclone.conf"), "--transfers", "8", "--checkers", "8"]
        self.n = 0

    def prepare(self) -> dict[str, float]:
        """Yesterday's backups, the seed's way: ``pg_dump -Fc`` and ``tar czf`` (timed, not part of RTO)."""
        dump_s, _ = timed([str(PGBIN / "pg_dump"), "-Fc", "-f", str(self.dump), "-d", self.info["db_url"]],
                          what="pg_dump -Fc")
        state = Path(self.info["state_dir"])
        tar_s, _ = timed(["tar", "-czf", str(self.tarball), "-C", str(state), "."], what="tar czf")
        print(f"  pg_dump -Fc {dump_s:.1f} s ({mb(self.dump.stat().st_size)}), tar czf {tar_s:.1f} s "
              f"({mb(self.tarball.stat().st_size)})", flush=True)
        return {"pg_dump_s": dump_s, "dump_bytes": self.dump.stat().st_size, "tar_czf_s": tar_s,
                "tarball_bytes": self.tarball.stat().st_size}

    def run(self, expected_pipelines: int) -> dict[str, Any]:
        self.n += 1
        db, bucket, target = f"manual_{self.n}", f"manual-{self.n}", self.work / f"state-{self.n}"
        r: dict[str, Any] = {}
        t0 = time.perf_counter()
        psql(self.base + "/postgres", f"CREATE DATABASE {db}")
        timed([str(PGBIN / "pg_restore"), "-d", f"{self.base}/{db}", str(self.dump)], what="pg_restore")
        r["database"] = time.perf_counter() - t0
        r["objects"], _ = timed(["rclone", "sync", f"PROD:{self.info['objects_bucket']}", f"PROD:{bucket}",
                                 *self.rc_common], self.rc_env, what="rclone sync")
        t0 = time.perf_counter()
        target.mkdir()
        timed(["tar", "-xzf", str(self.tarball), "-C", str(target)], what="tar xzf")
        r["state"] = time.perf_counter() - t0
        port = free_port()
        t0 = time.perf_counter()
        api = subprocess.Popen([SWARM, "api", "serve", "--port", str(port), "--db-url", f"{self.base}/{db}"],
                               env=env(self.home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while True:
                c = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/api/v1/pipelines"], capture_output=True,
                                   text=True, check=False)
                if c.returncode == 0:
                    break
                if api.poll() is not None:
                    raise SystemExit(f"swarm api serve exited: {api.stderr.read() if api.stderr else ''}")
                time.sleep(0.05)
            r["api"] = time.perf_counter() - t0
        finally:
            api.terminate()
            api.wait(10)
        total = json.loads(c.stdout)["total"]
        r["pipelines_ok"] = total == expected_pipelines
        r["total"] = r["database"] + r["objects"] + r["state"] + r["api"]
        print("  manual: " + json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()}),
              flush=True)
        # clean up, untimed
        psql(self.base + "/postgres", f"DROP DATABASE {db}")
        subprocess.run(["rclone", "purge", f"PROD:{bucket}", *self.rc_common], env=self.rc_env, capture_output=True,
                       check=False)
        shutil.rmtree(target, ignore_errors=True)
        return r


# ---------------------------------------------------------------- the report
def med(xs: list[float]) -> str:
    if not xs:
        return "–"
    m = statistics.median(xs)
    return f"{m:.1f} s" + (f" ({min(xs):.1f}–{max(xs):.1f})" if len(xs) > 1 else "")


def report(args: argparse.Namespace, facts: dict[str, Any], drills: list[dict[str, Any]],
           manuals: list[dict[str, Any]], restore_set: dict[str, Any] | None, took: float) -> str:
    names = [p["name"] for p in drills[0]["phases"]]

    def phase(d: dict[str, Any], name: str) -> dict[str, Any] | None:
        return next((p for p in d["phases"] if p["name"] == name), None)

    def secs(name: str) -> list[float]:
        return [p["seconds"] for d in drills if (p := phase(d, name))]

    def starts(name: str) -> list[float]:
        return [p["started_s"] for d in drills if (p := phase(d, name))]

    rto = [d["rto_s"] for d in drills if d["rto_s"] is not None]
    man = {k: [m[k] for m in manuals] for k in ("database", "objects", "state", "api", "total")}
    manual_of = {"database": "`pg_restore` of the `pg_dump -Fc` file into a new database",
                 "objects": "`rclone sync` of the bucket into a new bucket",
                 "state": "`tar xzf` of the state tarball", "api": "`swarm api serve` + one `curl`"}
    rows = []
    for n in names:
        ratio = ""
        if n in manual_of and man[n]:
            ratio = f"**{statistics.median(secs(n)) / statistics.median(man[n]):.2f}×**"
        rows.append(f"| {n} | {med(starts(n))} | {med(secs(n))} | {manual_of.get(n, '–')} | "
                    f"{med(man[n]) if n in man else '–'} | {ratio} |")
    rows.append(f"| **total (RTO)** | | **{med(rto)}** | the four steps one after the other | **{med(man['total'])}** "
                f"| **{statistics.median(rto) / statistics.median(man['total']):.2f}×** |")
    verdicts = [d["verdict"] for d in drills]
    ok_all = all(d["validated"] for d in drills)
    restores = [n for n in ("database", "objects", "state") if n in names]
    slower = [n for n in restores if statistics.median(secs(n)) > statistics.median(man[n])]
    overlapped = restores and all(
        max(starts(n)) < min(min(s + t for s, t in zip(starts(m), secs(m), strict=True)) for m in restores)
        for n in restores)
    dominant = max(names, key=lambda n: statistics.median(secs(n)))
    rto_med = statistics.median(rto)
    checks = drills[-1]["checks"]
    ladder = ", ".join(f"{k} {'ok' if v['ok'] else ('not run' if v['ok'] is None else 'FAILED')}"
                       for k, v in checks.items())
    load = f"{min(loads):.1f}–{max(loads):.1f}"
    md = [
        "## DR drill and whole-stack restore (`bench/drill.py`)",
        "",
        machine_line(),
        "",
        f"**Conditions:** 2 cores shared with 7 other engineers' work at the time (builds, test suites, other "
        f"benchmarks): the 1-minute load average, sampled between steps, was {load} (at the start "
        f"{loads[0]:.1f}); every figure below is inflated by that contention, the swarm and the manual side alike "
        f"(they alternated which went first, {len(drills)} run(s) each). Median (min–max) over the runs.",
        "",
        f"Deployment on the dev stack (`swarm dev up`, SWARM_HOME under /var/tmp): a database of "
        f"{mb(facts['db_bytes'])} (`pg_database_size`; `swarm dev seed --stores db --runs {args.runs} --size-mb "
        f"{args.size_mb:.0f}`), {facts['objects']:,} objects of {mb(facts['object_bytes'])} in the artefact bucket "
        "(bench/objects.py's sizes: 90% 1–40 KB, 9% 40 KB–1 MB, 1% 1–5 MB; each recorded in `run_artefacts`), a "
        f"state directory of {mb(facts['state']['bytes'])} in {facts['state']['files']:,} files "
        f"(bench/state.py's builder: {facts['state']['runs']:,} batch run dirs of small JSON/JSONL files and four "
        f"JSONL files of {', '.join(mb(x) for x in facts['state']['large'])}; run dirs renamed to real run ids and "
        "`cron/jobs.json` naming real pipelines, so the cross-store check can pass). `swarm admin backup set` took "
        f"{facts['backup_set_s']:.1f} s. The seed's backups for the manual side: `pg_dump -Fc` "
        f"{facts['manual']['pg_dump_s']:.1f} s ({mb(facts['manual']['dump_bytes'])}), `tar czf` "
        f"{facts['manual']['tar_czf_s']:.1f} s ({mb(facts['manual']['tarball_bytes'])}).",
        "",
        "swarm: `swarm admin drill --latest --json` (provision a scratch cluster on a free port, a scratch bucket "
        "and state directory; restore the set's database, objects and state at the same time; `swarm api serve` on "
        "the scratch database; the validation ladder; teardown, not counted in RTO). Manual: the seed's runbook, "
        "one step after the other: `pg_restore` (no `-j`) of the `pg_dump -Fc` file into a new database, "
        "`rclone sync --transfers 8 --checkers 8` (standing in for `aws s3 sync`; server-side copies within the "
        "same SeaweedFS) into a new bucket, `tar xzf` into a new directory, `swarm api serve` on the restored "
        "database and one `curl .../api/v1/pipelines` (from the server's launch to the answer; its total matched "
        f"production's: {all(m['pipelines_ok'] for m in manuals)}). The manual side provisions nothing and "
        "validates nothing beyond that one `curl`.",
        "",
        "| drill phase | starts at | seconds | manual step | seconds | drill / manual |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Drill runs: verdict {verdicts}, validated {ok_all}; RTO per run {[round(x, 1) for x in rto]} s, RPO per "
        f"run {[round(d['rpo_s'], 1) for d in drills if d['rpo_s'] is not None]} s (drill start minus the set's "
        f"consistency point T, taken at the start of the {facts['backup_set_s']:.0f} s `backup set`, before the "
        "manual side's own backups: it measures this benchmark's schedule, not swarm; tier enterprise, targets RTO "
        f"4 h / RPO 1 h); wall time of the command (teardown included) "
        f"{[round(d['wall_s'], 1) for d in drills]} s. Ladder of the last run: {ladder}. Manual totals per run "
        f"{[round(m['total'], 1) for m in manuals]} s.",
        "",
    ]
    if restore_set is not None:
        md += [
            f"Whole-stack restore (issue 11), `swarm admin restore set` into `swarm dev scratch`: "
            f"{restore_set['seconds']:.1f} s for the three stores one after the other and the integrity check "
            f"(ok: {restore_set['ok']}; integrity ok: {restore_set['integrity_ok']}); the command reports no time "
            "per store. Its per-phase times are the drill's `database`, `objects` and `state` rows above: the "
            "same restores (the drill calls them), there run at the same time.",
            "",
        ]
    md += [
        "Aims (issue 14):",
        "",
        f"* RTO under 2 minutes here: {'**met**' if rto_med < 120 else '**not met**'} (median "
        f"{rto_med:.1f} s{'' if rto_med < 120 else f', {rto_med - 120:.1f} s over'}; the longest phase: "
        f"`{dominant}`, {statistics.median(secs(dominant)):.1f} s);",
        f"* restore phases no slower than the manual procedure's steps: {'**met**' if not slower else '**not met**'}"
        + ("" if not slower else " (" + "; ".join(
            f"`{n}` {statistics.median(secs(n)):.1f} s vs {statistics.median(man[n]):.1f} s, "
            f"{statistics.median(secs(n)) - statistics.median(man[n]):+.1f} s" for n in slower) + ")")
        + "; the drill's restores share the 2 cores with each other, the manual steps ran alone;",
        f"* phases that can run in parallel do: {'**met**' if overlapped else '**not met**'} (database, objects "
        f"and state start at {', '.join(f'{statistics.median(starts(n)):.1f} s' for n in restores)} and overlap).",
        "",
        f"Whole benchmark run: {took / 60:.0f} min.",
    ]
    return "\n".join(md)


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=Path("/var/tmp/swarm-bench-drill"))
    ap.add_argument("--size-mb", type=float, default=1100, help="Target database size.")
    ap.add_argument("--runs", type=int, default=6000, help="Pipeline runs seeded (≥ the state dir's run dirs).")
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--state-mb", type=float, default=1000)
    ap.add_argument("--reps", type=int, default=2, help="Runs per side, alternating.")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--no-restore-set", action="store_true", help="Skip the timed `restore set`.")
    ap.add_argument("--quick", action="store_true", help="Small sizes, one rep; print, do not write RESULTS.md.")
    args = ap.parse_args()
    if args.quick:
        args.size_mb, args.runs, args.objects, args.state_mb, args.reps = 40, 800, 300, 30, 1
    if not shutil.which("rclone"):
        raise SystemExit("rclone is not installed: run `make bench-tools` (Debian's rclone package).")
    t_start = time.monotonic()
    note_load()
    home: Path = args.home
    if home.exists():  # an earlier run's leftovers (best effort: a killed drill's scratch cluster, then the stack)
        for cmd in (["admin", "drill", "cleanup"], ["dev", "down", "--purge"]):
            subprocess.run([SWARM, *cmd], env=env(home), capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    home.chmod(0o755)
    work = home / "manual"
    work.mkdir()
    try:
        _, info, _ = swarm(home, "dev", "up")
        took, seeded, _ = swarm(home, "dev", "seed", "--stores", "db", "--runs", str(args.runs), "--size-mb",
                                str(args.size_mb))
        print(f"  seeded {seeded['runs']} runs, {seeded['events']} events in {took:.0f} s", flush=True)
        note_load()
        run_ids = psql(info["db_url"], "SELECT id FROM runs ORDER BY id").splitlines()
        pipelines = psql(info["db_url"], "SELECT name FROM pipelines ORDER BY name").splitlines()
        obj_bytes, obj_s = fill_objects(info, run_ids, args.objects, args.seed)
        print(f"  {args.objects} objects, {mb(obj_bytes)} in {obj_s:.0f} s", flush=True)
        state = fill_state(Path(info["state_dir"]), args.state_mb, args.seed, run_ids, pipelines)
        print(f"  state directory: {state}", flush=True)
        note_load()
        facts: dict[str, Any] = {"db_bytes": int(psql(info["db_url"], "SELECT pg_database_size(current_database())")),
                                 "objects": args.objects, "object_bytes": obj_bytes, "state": state}
        facts["backup_set_s"], bset, _ = swarm(home, "admin", "backup", "set")
        note_load()
        manual = Manual(home, info, work)
        facts["manual"] = manual.prepare()
        n_pipelines = len(pipelines)
        drills: list[dict[str, Any]] = []
        manuals: list[dict[str, Any]] = []
        restore_set: dict[str, Any] | None = None

        def write() -> None:  # after every stage, so an interrupted run still leaves its figures
            md = report(args, facts, drills, manuals, restore_set, time.monotonic() - t_start)
            print(md, flush=True)
            if not args.quick:
                update_section("drill", md)

        for rep in range(args.reps):
            for side in (("drill", "manual") if rep % 2 == 0 else ("manual", "drill")):
                note_load()
                if side == "drill":
                    drills.append(drill(home))
                else:
                    manuals.append(manual.run(n_pipelines))
            note_load()
            if rep == 0 and not args.no_restore_set:
                write()
                _, sc, _ = swarm(home, "dev", "scratch", "bench_restore")
                took, rs, rc = swarm(home, "admin", "restore", "set", bset["id"], "--target-db", sc["db_url"],
                                     "--target-bucket", sc["objects_bucket"], "--target-state", sc["state_dir"],
                                     "--force", ok_codes=(0, 1))
                restore_set = {"seconds": took, "ok": bool(rs and rs.get("ok")),
                               "integrity_ok": bool(rs and rs.get("integrity", {}).get("ok")), "exit": rc}
                print(f"  restore set: {restore_set}", flush=True)
                note_load()
            write()
    finally:
        subprocess.run([SWARM, "dev", "down", "--purge"], env=env(home), capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
