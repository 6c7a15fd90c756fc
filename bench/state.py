"""State-directory snapshots: swarm vs restic (Debian's package) and the seed's `tar czf`, in one run.

A deterministic state directory (``--seed``) of about ``--size-mb`` MB in swarm's layout:
``cron/jobs.json``, ``batch/run-NNNNN/`` run dirs of small JSON files and JSONL logs, and a few
large JSONL files of 50-200 MB under ``batch/archive/`` (hex payloads: about 2:1 compressible).
Each tool, alternating which goes first, ``--reps`` times into a fresh repository:

1. first snapshot (wall time, repository bytes on disk, peak RSS of the process tree);
2. a second with nothing changed;
3. a third after 1% of the files changed (half rewritten whole, as swarm rewrites ``status.json``
   and ``jobs.json``; half with lines appended) and 1 MB inserted at the start of the largest
   file: bytes the repository grew by, against the bytes that changed;
4. restore of the third into an empty directory (wall time, peak RSS), checked against the source.

Then the unchanged re-run over 10,000 and 100,000 small files (each tool snapshots the tree
once, then re-runs it ``--rerun-reps`` times, alternating; the fastest counts), and the
memory of a first snapshot and restore of a ``--small-mb`` directory (memory as it grows).
swarm: ``swarm admin backup state --json`` / ``swarm admin restore state ID --target-state DIR
--json`` into a ``file://`` repository (zstd + AES-256-GCM; restore reads back every file and
compares its SHA-256). restic: ``restic backup`` / ``restic restore latest`` into a local
repository (its defaults: compression auto, AES-256 + Poly1305). tar: ``tar czf`` / ``tar xzf``
(the seed's procedure; no dedup, every run a full archive).

    .venv/bin/python bench/state.py                   # full size, writes bench/RESULTS.md
    .venv/bin/python bench/state.py --quick           # small sizes, prints only

Writes the ``state`` section of bench/RESULTS.md (not with ``--quick``).
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, update_section
from procmem import Measured, run

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORK = ROOT / "bench" / ".work" / "state"
RESTIC_PASSWORD = "bench-only-password"
TOOLS = ("swarm", "restic", "tar")


# ---------------------------------------------------------------- the state directory
def _record(rng: random.Random, i: int, payload: int) -> bytes:
    return b'{"i": %d, "ts": "2026-11-%02dT%02d:%02d:%02dZ", "level": "%s", "payload": "%s"}\n' % (
        i, 1 + i % 28, i % 24, i % 60, (i * 7) % 60, rng.choice((b"info", b"debug", b"warn")),
        rng.randbytes(payload).hex().encode())


def _jsonl(rng: random.Random, size: int, start: int = 0) -> bytes:
    out = bytearray()
    i = start
    while len(out) < size:
        out += _record(rng, i, rng.randint(40, 480))
        i += 1
    return bytes(out)


def _write_large(path: Path, rng: random.Random, size: int) -> None:
    with open(path, "wb") as fh:
        written, i = 0, 0
        while written < size:
            block = _jsonl(rng, min(4 << 20, size - written), i)
            i += 4000
            fh.write(block)
            written += len(block)


def _small_json(rng: random.Random, run_id: int) -> bytes:
    doc = {"run_id": f"run-{run_id:05d}", "pipeline": f"p-{rng.randrange(200)}",
           "status": rng.choice(["queued", "running", "succeeded", "failed"]),
           "items": rng.randrange(1, 5000), "attempt": rng.randrange(1, 4),
           "params": {f"k{j}": rng.randbytes(rng.randrange(4, 40)).hex() for j in range(rng.randrange(2, 30))}}
    return json.dumps(doc, indent=1).encode()


def generate(d: Path, size_mb: float, seed: int) -> dict[str, Any]:
    """A state directory of about ``size_mb`` MB (half in large files, half in run dirs); deterministic."""
    rng = random.Random(seed)
    total = int(size_mb * 1e6)
    (d / "cron").mkdir(parents=True)
    (d / "cron" / "jobs.json").write_text(json.dumps({"version": 1, "jobs": [
        {"id": f"job-{i:04d}", "pipeline": f"p-{i % 200}", "schedule": f"{i % 60} * * * *", "enabled": i % 7 != 0}
        for i in range(500)]}, indent=1))
    archive = d / "batch" / "archive"
    archive.mkdir(parents=True)
    large_sizes = [int(s * size_mb / 1000 * 1e6) for s in (200, 150, 100, 50)]
    for k, s in enumerate(large_sizes):
        _write_large(archive / f"batch-{k}.jsonl", rng, s)
    budget = total - sum(large_sizes)
    # run dirs: status.json + params.json (1-4 KB), input.jsonl + output.jsonl (log-normal, median ~40 KB)
    n_runs = 0
    files = 1 + len(large_sizes)
    while budget > 0:
        run_dir = d / "batch" / f"run-{n_runs:05d}"
        run_dir.mkdir()
        for name in ("status.json", "params.json"):
            data = _small_json(rng, n_runs)
            (run_dir / name).write_bytes(data)
            budget -= len(data)
        for name in ("input.jsonl", "output.jsonl"):
            data = _jsonl(rng, min(int(rng.lognormvariate(10.6, 1.0)), 2_000_000))
            (run_dir / name).write_bytes(data)
            budget -= len(data)
        if n_runs % 10 == 0:
            (run_dir / "log.txt").write_bytes(b"".join(b"step %d ok\n" % j for j in range(rng.randrange(5, 500))))
            files += 1
        files += 4
        n_runs += 1
    return {"files": files, "runs": n_runs, "bytes": du(d), "large": large_sizes}


def generate_small_files(d: Path, n: int, seed: int) -> int:
    """``n`` small JSON files (100 B - 2 KB) in run dirs of 10; returns the bytes written."""
    rng = random.Random(seed)
    total = 0
    for i in range(n):
        run_dir = d / "batch" / f"run-{i // 10:06d}"
        if i % 10 == 0:
            run_dir.mkdir(parents=True)
        data = json.dumps({"i": i, "status": rng.choice(["done", "failed"]),
                           "note": rng.randbytes(rng.randrange(30, 900)).hex()}).encode()
        (run_dir / f"item-{i % 10}.json").write_bytes(data)
        total += len(data)
    return total


def change_one_percent(d: Path, seed: int) -> int:
    """1% of the files changed (half rewritten by rename, half appended to) and 1 MB inserted at
    the start of the largest file. Returns the bytes that changed (new content written)."""
    rng = random.Random(seed + 1)
    files = sorted(p for p in d.rglob("*") if p.is_file() and "archive" not in p.parts)
    picked = rng.sample(files, max(1, len(files) // 100))
    changed = 0
    for k, p in enumerate(picked):
        if k % 2 == 0:  # rewritten whole (by rename, like jobs.json)
            body = p.read_bytes()
            new = body.replace(b'"', b"'", 1) + _jsonl(rng, 200)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(new)
            tmp.rename(p)
            changed += len(new)
        else:  # appended to
            extra = _jsonl(rng, rng.randrange(500, 20_000))
            with open(p, "ab") as fh:
                fh.write(extra)
            changed += len(extra)
    big = max((d / "batch" / "archive").iterdir(), key=lambda p: p.stat().st_size)
    inserted = _jsonl(rng, 1 << 20)[: 1 << 20]
    tmp = big.with_name(big.name + ".tmp")
    with open(tmp, "wb") as out, open(big, "rb") as src:
        out.write(inserted)
        shutil.copyfileobj(src, out, 4 << 20)
    tmp.rename(big)
    return changed + len(inserted)


def du(path: Path) -> int:
    """Bytes of every regular file under ``path`` (apparent size)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    todo = [cmp]
    while todo:
        c = todo.pop()
        if c.left_only or c.right_only or c.funny_files:
            return False
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        if mismatch or errors:
            return False
        todo.extend(c.subdirs.values())
    return True


# ---------------------------------------------------------------- the tools
class Tool:
    """One tool's repository at ``base``, backing up ``state``."""

    name = ""

    def __init__(self, base: Path, state: Path) -> None:
        self.base, self.state = base, state
        base.mkdir(parents=True)

    def repo_bytes(self) -> int:
        return du(self.base / "repo")

    def backup(self) -> Measured:
        raise NotImplementedError

    def restore(self, target: Path) -> Measured:
        raise NotImplementedError


def _check(m: Measured, what: str) -> Measured:
    if m.returncode != 0:
        raise SystemExit(f"{what} failed ({m.returncode}): {m.stderr[-2000:]}")
    return m


class Swarm(Tool):
    name = "swarm"

    def __init__(self, base: Path, state: Path) -> None:
        super().__init__(base, state)
        from swarm.crypto.keys import create_key_file

        create_key_file(base / "key")
        (base / "home").mkdir()
        self.last_id = ""
        self.last: dict[str, Any] = {}

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
        e.update(SWARM_HOME=str(self.base / "home"), SWARM_BACKUP_REPO=f"file://{self.base / 'repo'}",
                 SWARM_KEY_URL=f"file://{self.base / 'key'}", SWARM_STATE_DIR=str(self.state))
        return e

    def backup(self) -> Measured:
        m = _check(run([str(BIN / "swarm"), "admin", "backup", "state", "--json"], env=self.env()), "swarm backup")
        self.last = json.loads(m.stdout)
        self.last_id = self.last["id"]
        return m

    def restore(self, target: Path) -> Measured:
        return _check(run([str(BIN / "swarm"), "admin", "restore", "state", self.last_id, "--target-state",
                           str(target), "--json"], env=self.env()), "swarm restore")


class Restic(Tool):
    name = "restic"

    def __init__(self, base: Path, state: Path) -> None:
        super().__init__(base, state)
        _check(run(["restic", "init", "--quiet"], env=self.env()), "restic init")

    def env(self) -> dict[str, str]:
        return {**os.environ, "RESTIC_REPOSITORY": str(self.base / "repo"), "RESTIC_PASSWORD": RESTIC_PASSWORD,
                "RESTIC_CACHE_DIR": str(self.base / "cache")}

    def backup(self) -> Measured:
        return _check(run(["restic", "backup", "--quiet", "--host", "bench", str(self.state)], env=self.env()),
                      "restic backup")

    def restore(self, target: Path) -> Measured:
        return _check(run(["restic", "restore", "latest", "--host", "bench", "--target", str(target)],
                          env=self.env()), "restic restore")


class Tar(Tool):
    name = "tar"

    def __init__(self, base: Path, state: Path) -> None:
        super().__init__(base, state)
        (base / "repo").mkdir()
        self.n = 0

    def backup(self) -> Measured:
        self.n += 1
        return _check(run(["tar", "-czf", str(self.base / "repo" / f"state-{self.n}.tar.gz"), "-C", str(self.state),
                           "."]), "tar czf")

    def restore(self, target: Path) -> Measured:
        target.mkdir(parents=True)
        return _check(run(["tar", "-xzf", str(self.base / "repo" / f"state-{self.n}.tar.gz"), "-C", str(target)]),
                      "tar xzf")


def make(name: str, base: Path, state: Path) -> Tool:
    return {"swarm": Swarm, "restic": Restic, "tar": Tar}[name](base, state)


def restored_root(tool: Tool, target: Path) -> Path:
    """restic restores the absolute path under the target; the others the directory's contents."""
    return target / str(tool.state).lstrip("/") if isinstance(tool, Restic) else target


# ---------------------------------------------------------------- the measurements
def settle() -> None:
    """Files written within 3 s of a snapshot's start are always read again (the change cache's rule)."""
    time.sleep(3.5)


def sequence(src: Path, size_mb: float, seed: int, reps: int, tools: tuple[str, ...]) -> dict[str, Any]:
    """First / unchanged / 1%-changed snapshots and a restore, per tool, ``reps`` times alternating."""
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    info: dict[str, Any] = {}
    for rep in range(reps):
        order = tools if rep % 2 == 0 else tuple(reversed(tools))
        for name in order:
            state = WORK / "state"
            shutil.rmtree(state, ignore_errors=True)
            shutil.copytree(src, state, symlinks=True, copy_function=shutil.copy2)  # same bytes every run
            settle()
            tool = make(name, WORK / f"{name}-{rep}", state)
            r: dict[str, Any] = {}
            m = tool.backup()
            r["first_s"], r["first_rss"], r["first_bytes"] = m.seconds, m.peak_rss, tool.repo_bytes()
            if isinstance(tool, Swarm):
                r["first_cache"] = tool.last["cache"]
            settle()
            m = tool.backup()
            r["second_s"], r["second_added"] = m.seconds, tool.repo_bytes() - r["first_bytes"]
            before = tool.repo_bytes()
            info["changed_bytes"] = change_one_percent(state, seed)
            settle()
            m = tool.backup()
            r["third_s"], r["third_added"] = m.seconds, tool.repo_bytes() - before
            if isinstance(tool, Swarm):
                r["third_cache"] = tool.last["cache"]
                r["third_new_bytes"] = tool.last["new_bytes"]
            target = WORK / f"restored-{name}"
            shutil.rmtree(target, ignore_errors=True)
            m = tool.restore(target)
            r["restore_s"], r["restore_rss"] = m.seconds, m.peak_rss
            r["restored_ok"] = same_tree(state, restored_root(tool, target))
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(tool.base, ignore_errors=True)
            runs[name].append(r)
            print(f"  rep {rep} {name}: " + json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                                        for k, v in r.items()}), flush=True)
    return {"runs": runs, **info}


def reruns(n_files: int, seed: int, reps: int, tools: tuple[str, ...]) -> dict[str, Any]:
    """Unchanged re-runs over ``n_files`` small files: each tool snapshots once, then re-runs ``reps`` times."""
    state = WORK / "state"
    shutil.rmtree(state, ignore_errors=True)
    nbytes = generate_small_files(state, n_files, seed)
    settle()
    made = {t: make(t, WORK / f"{t}-rerun-{n_files}", state) for t in tools}
    first = {t: made[t].backup() for t in tools}
    settle()
    times: dict[str, list[float]] = {t: [] for t in tools}
    rss: dict[str, int] = dict.fromkeys(tools, 0)
    added: dict[str, int] = dict.fromkeys(tools, 0)
    for rep in range(reps):
        for t in tools if rep % 2 == 0 else tuple(reversed(tools)):
            before = made[t].repo_bytes()
            m = made[t].backup()
            times[t].append(m.seconds)
            rss[t] = max(rss[t], m.peak_rss)
            added[t] = max(added[t], made[t].repo_bytes() - before)
    for t in tools:
        shutil.rmtree(made[t].base, ignore_errors=True)
    out = {"files": n_files, "bytes": nbytes, "first_s": {t: first[t].seconds for t in tools},
           "first_rss": {t: first[t].peak_rss for t in tools},
           "best_s": {t: min(times[t]) for t in tools}, "all_s": {t: [round(x, 2) for x in times[t]] for t in tools},
           "rss": rss, "added": added}
    print(f"  re-run {n_files} files: " + json.dumps(out), flush=True)
    return out


def best(runs: list[dict[str, Any]], key: str) -> float:
    return min(r[key] for r in runs)


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 10e6 else f"{n / 1e6:,.0f} MB"


def kb(n: float) -> str:
    return f"{n / 1e3:,.1f} kB"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def report(args: argparse.Namespace, load: tuple[float, float], big: dict[str, Any], small: dict[str, Any],
           seq: dict[str, Any], small_seq: dict[str, Any], r10: dict[str, Any], r100: dict[str, Any],
           took: float) -> str:
    R = seq["runs"]
    s, rs, t = R["swarm"], R["restic"], R["tar"]
    SR = small_seq["runs"]["swarm"]
    changed = seq["changed_bytes"]
    first_ok = best(s, "first_s") <= best(rs, "first_s") and best(s, "first_bytes") <= best(rs, "first_bytes")
    third_ok = max(r["third_added"] for r in s) < 2 * changed
    restore_ok = best(s, "restore_s") <= best(rs, "restore_s")
    r10_ok = r10["best_s"]["swarm"] < 1.0 and r10["added"]["swarm"] < 1e6
    r100_ok = r100["best_s"]["swarm"] < 3.0 and r100["added"]["swarm"] < 1e6
    growth_first = best(s, "first_rss") / best(SR, "first_rss")
    growth_restore = best(s, "restore_rss") / best(SR, "restore_rss")
    flat = growth_first < 1.5 and growth_restore < 1.5

    def row(label: str, key: str, fmt: Any, ratio: bool = True) -> str:
        vs, vr, vt = best(s, key), best(rs, key), best(t, key)
        rat = f"**{vs / vr:.2f}×**" if ratio and vr else ""
        return f"| {label} | {fmt(vs)} | {fmt(vr)} | {fmt(vt)} | {rat} |"

    def secs(x: float) -> str:
        return f"{x:.1f} s" if x >= 10 else f"{x:.2f} s"

    all_runs = {name: {k: [round(r[k], 1) for r in R[name]] for k in ("first_s", "second_s", "third_s", "restore_s")}
                for name in TOOLS}
    restic_version = subprocess.run(["restic", "version"], capture_output=True, text=True,
                                    check=False).stdout.split(" compiled")[0]
    tar_version = subprocess.run(["tar", "--version"], capture_output=True, text=True,
                                 check=False).stdout.splitlines()[0]
    md = [
        "## State-directory snapshots (`bench/state.py`)",
        "",
        machine_line(),
        "",
        f"State directory generated by `bench/state.py --seed {args.seed}`: {mb(big['bytes'])} in {big['files']:,} "
        f"files: `cron/jobs.json`, {big['runs']:,} batch run dirs (`status.json`, `params.json`, `input.jsonl`, "
        f"`output.jsonl`, some `log.txt`; JSON and JSONL with hex payloads, about 2:1 compressible) and four JSONL "
        f"files of {', '.join(mb(x) for x in big['large'])}. Baselines: {restic_version} (Debian; local repository, "
        f"its defaults: compression auto) and the seed's `tar czf` ({tar_version}). swarm: `swarm admin backup state "
        "--json` into a `file://` repository on the same disk (FastCDC 16 KiB + 32 KiB, zstd, AES-256-GCM); "
        "`swarm admin restore state ID --target-state DIR` (every restored file read back and its SHA-256 "
        "compared); restic: `restic backup` / `restic restore latest`; tar: `tar czf` / `tar xzf`. Bytes = the "
        "repository's (or archive's) size on disk. Peak memory = RSS of the whole process tree. Each tool ran the "
        f"sequence {args.reps} times on a fresh copy of the directory, alternating which goes first; the best run "
        f"counts (all runs, seconds: {all_runs}). Load average when the run started: {load[0]:.1f}, at the end: "
        f"{load[1]:.1f} (2 cores shared with other work: noise only adds time). Whole run: {took / 60:.1f} min.",
        "",
        "| | swarm | restic | tar czf | swarm / restic |",
        "|---|---|---|---|---|",
        row("first snapshot, wall time", "first_s", secs),
        row("first snapshot, bytes stored", "first_bytes", mb),
        row("second, nothing changed, wall time", "second_s", secs),
        row("second, bytes added", "second_added", kb, ratio=False),
        row("third, after 1% of files changed + 1 MB inserted, wall time", "third_s", secs),
        row("third, bytes added", "third_added", mb),
        row("restore, wall time", "restore_s", secs),
        row("peak memory, first snapshot", "first_rss", mb),
        row("peak memory, restore", "restore_rss", mb),
        "",
        f"The 1% change: {mb(changed)} of new content (1% of the files outside the large "
        "ones, half rewritten by rename with a few lines added, half with lines appended; 1 MB inserted at the start "
        f"of the {mb(big['large'][0])} file). swarm's third snapshot read {s[0]['third_cache']['read']:,} files "
        f"(reused {s[0]['third_cache']['reused']:,} from the change cache, re-hashed "
        f"{s[0]['third_cache']['rehashed']:,}) and stored {mb(s[0]['third_new_bytes'])} of new chunks before "
        "compression. tar writes a full archive every time (its \"bytes added\" is the whole archive). Restored "
        f"trees identical to the source: swarm {all(r['restored_ok'] for r in s)}, restic "
        f"{all(r['restored_ok'] for r in rs)}, tar {all(r['restored_ok'] for r in t)}.",
        "",
        "Unchanged re-run over many small files (JSON of 100 B - 2 KB, 10 per run dir; each tool snapshots once, "
        f"then re-runs {args.rerun_reps} times alternating; the fastest counts; wall time of the whole command, "
        "start-up included):",
        "",
        "| files | swarm | restic | tar czf | swarm / restic | swarm bytes added | restic bytes added | "
        "swarm peak memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in (r10, r100):
        b = r["best_s"]
        md.append(f"| {r['files']:,} ({mb(r['bytes'])}) | {secs(b['swarm'])} | {secs(b['restic'])} | "
                  f"{secs(b['tar'])} | **{b['swarm'] / b['restic']:.2f}×** | {kb(r['added']['swarm'])} | "
                  f"{kb(r['added']['restic'])} | {mb(r['rss']['swarm'])} |")
    md += [
        "",
        f"First snapshots of those: {r10['files']:,} files swarm {secs(r10['first_s']['swarm'])}, restic "
        f"{secs(r10['first_s']['restic'])}; {r100['files']:,} files swarm {secs(r100['first_s']['swarm'])} "
        f"(peak {mb(r100['first_rss']['swarm'])}), restic {secs(r100['first_s']['restic'])} "
        f"(peak {mb(r100['first_rss']['restic'])}).",
        "",
        f"Memory as the directory grows ({mb(small['bytes'])} → {mb(big['bytes'])}, {small['files']:,} → "
        f"{big['files']:,} files): swarm first snapshot peak {mb(best(SR, 'first_rss'))} → {mb(best(s, 'first_rss'))} "
        f"({growth_first:.2f}×), restore peak {mb(best(SR, 'restore_rss'))} → {mb(best(s, 'restore_rss'))} "
        f"({growth_restore:.2f}×); restic {mb(best(small_seq['runs']['restic'], 'first_rss'))} → "
        f"{mb(best(rs, 'first_rss'))} and {mb(best(small_seq['runs']['restic'], 'restore_rss'))} → "
        f"{mb(best(rs, 'restore_rss'))}. Re-run of {r10['files']:,} → {r100['files']:,} files: swarm peak "
        f"{mb(r10['rss']['swarm'])} → "
        f"{mb(r100['rss']['swarm'])}.",
        "",
        "Aims (issue 11):",
        "",
        f"* first snapshot no slower than restic at no more bytes: {verdict(first_ok)} "
        f"({best(s, 'first_s') / best(rs, 'first_s'):.2f}× the time, "
        f"{best(s, 'first_bytes') / best(rs, 'first_bytes'):.2f}× the bytes);",
        f"* unchanged re-run of {r10['files']:,} files under 1 s adding under 1 MB: {verdict(r10_ok)} "
        f"({secs(r10['best_s']['swarm'])}, {kb(r10['added']['swarm'])});",
        f"* unchanged re-run of {r100['files']:,} files under 3 s adding under 1 MB: {verdict(r100_ok)} "
        f"({secs(r100['best_s']['swarm'])}, {kb(r100['added']['swarm'])});",
        f"* the 1% change adding under 2× the changed bytes: {verdict(third_ok)} "
        f"({max(r['third_added'] for r in s) / changed:.2f}× of {mb(changed)}; restic "
        f"{best(rs, 'third_added') / changed:.2f}×);",
        f"* restore no slower than restic: {verdict(restore_ok)} "
        f"({best(s, 'restore_s') / best(rs, 'restore_s'):.2f}×);",
        f"* memory flat as the directory grows (under 1.5× for 4× the data): {verdict(flat)} "
        f"({growth_first:.2f}× / {growth_restore:.2f}×).",
    ]
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=1000, help="The state directory measured.")
    ap.add_argument("--small-mb", type=float, default=250, help="A smaller one, for memory as it grows.")
    ap.add_argument("--files", type=int, nargs=2, default=(10_000, 100_000), help="The two re-run sizes.")
    ap.add_argument("--reps", type=int, default=2, help="Sequences per tool on the large directory.")
    ap.add_argument("--rerun-reps", type=int, default=3, help="Unchanged re-runs per tool.")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="Small sizes, one rep; print, do not write RESULTS.md.")
    args = ap.parse_args()
    if args.quick:
        args.size_mb, args.small_mb, args.files, args.reps, args.rerun_reps = 80, 20, (1000, 5000), 1, 2
    if not shutil.which("restic"):
        raise SystemExit("restic is not installed: run `make bench-tools` (Debian's restic package).")
    t0 = time.monotonic()
    load_before = os.getloadavg()[0]
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    print(f"generating {args.size_mb:.0f} MB and {args.small_mb:.0f} MB state directories", flush=True)
    big = generate(WORK / "src-big", args.size_mb, args.seed)
    small = generate(WORK / "src-small", args.small_mb, args.seed)
    print(f"  {big} / {small}", flush=True)
    r10 = reruns(args.files[0], args.seed, args.rerun_reps, TOOLS)
    r100 = reruns(args.files[1], args.seed, args.rerun_reps, TOOLS)
    print(f"sequence on {args.small_mb:.0f} MB", flush=True)
    small_seq = sequence(WORK / "src-small", args.small_mb, args.seed, 1, TOOLS)
    print(f"sequence on {args.size_mb:.0f} MB", flush=True)
    seq = sequence(WORK / "src-big", args.size_mb, args.seed, args.reps, TOOLS)
    took = time.monotonic() - t0
    md = report(args, (load_before, os.getloadavg()[0]), big, small, seq, small_seq, r10, r100, took)
    print(md)
    if not args.quick:
        update_section("state", md)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
