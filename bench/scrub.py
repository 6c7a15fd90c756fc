"""Benchmark the PII scrubber against Presidio's rule-based recognizers.

    .venv/bin/python bench/scrub.py [--n 3000] [--seed 7] [--repeat 3]

Runs ../shared/pii/evaluate.py on the dev corpus and on a synthetic held-out
corpus (bench/scrub_corpus.py, generated from the seed) for

* swarm: ``swarm admin scrub --format jsonl`` (or ``python -m swarm.cli.commands.scrub``);
* presidio: bench/presidio_scrub.py in ``.venv-bench`` (created here if missing,
  ``pip install presidio-analyzer``; pattern/rule recognizers only, no model),

both as commands, so throughput includes process start-up for both
(``--no-presidio`` leaves Presidio out).  Then the CLI throughput on a large
synthetic corpus (``--big-n`` records, at least 20 MB of text) in ``--runs``
alternating runs of this tree's ``swarm admin scrub --jobs N`` (``--jobs``,
default 2), of ``--jobs 1`` and, with ``--baseline DIR``, of another source tree's
(``PYTHONPATH=DIR/src python -m swarm.cli.commands.scrub``), both with the
same key so that their outputs can be compared byte for byte.  Each run
records wall time less start-up (start-up: the same command on empty input,
best of 2), the CPU time of the process and its workers less that of the empty
run, and the load average; the medians
and ranges are reported.  Writes the figures into the ``scrub`` section of
bench/RESULTS.md.

    .venv/bin/python bench/scrub.py --baseline /path/to/older/checkout
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "pii"
BENCH_VENV = REPO / ".venv-bench"
TYPES = ["PAN", "AADHAAR", "SSN", "EMAIL", "PHONE"]

sys.path.insert(0, str(HERE))
from _results import machine_line, update_section  # noqa: E402


def ensure_presidio() -> Path:
    py = BENCH_VENV / "bin" / "python"
    probe = [str(py), "-c", "import presidio_analyzer"]
    if py.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "presidio-analyzer"], check=True)
    return py


def swarm_cmd() -> str:
    exe = REPO / ".venv" / "bin" / "swarm"
    if exe.exists():
        probe = subprocess.run([str(exe), "admin", "scrub", "--format", "jsonl"], input=b"",
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return f"{exe} admin scrub --format jsonl"
    return f"{REPO / '.venv' / 'bin' / 'python'} -m swarm.cli.commands.scrub --format jsonl"


def evaluate(corpus: Path, cmds: list[tuple[str, str]], repeat: int, out: Path) -> dict[str, Any]:
    args = [sys.executable, str(SHARED / "evaluate.py"), "--corpus", str(corpus), "--repeat", str(repeat),
            "--json-out", str(out)]
    for name, cmd in cmds:
        args += ["--cmd", cmd, "--name", name]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    res: dict[str, Any] = json.loads(out.read_text())
    return res


def in_process_mbps(corpus: Path) -> float:
    """swarm Scrubber.scrub throughput inside one process (no start-up, no JSONL framing)."""
    sys.path.insert(0, str(REPO / "src"))
    from swarm.scrub import Scrubber

    texts = [json.loads(x)["text"] for x in corpus.read_text(encoding="utf-8").splitlines() if x.strip()]
    n = sum(len(t.encode()) for t in texts)
    s = Scrubber(os.urandom(32))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for t in texts:
            s.scrub(t)
        best = min(best, time.perf_counter() - t0)
    return n / 1e6 / best


def _run_once(cmd: str, inp: Path, out: Path | None, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) of ``cmd`` reading ``inp``; stdout to ``out`` (or discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with inp.open("rb") as fin, (out.open("wb") if out else open(os.devnull, "wb")) as fout:
        t0 = time.perf_counter()
        subprocess.run(cmd, shell=True, stdin=fin, stdout=fout, check=True, env=env)
        wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_throughput(cmds: list[tuple[str, str]], inp: Path, mb: float, runs: int, tmp: Path) -> dict[str, Any]:
    """Alternating CLI runs of each command on ``inp`` (``mb`` MB of text): MB/s excl. start-up and per CPU s."""
    env = dict(os.environ, SWARM_SCRUB_KEY=os.urandom(32).hex())
    empty = tmp / "empty.jsonl"
    empty.write_bytes(b"")
    res: dict[str, Any] = {n: {"wall": [], "cpu": [], "startup": [], "load": []} for n, _ in cmds}
    digests: dict[str, set[str]] = {n: set() for n, _ in cmds}
    for _ in range(runs):
        for name, cmd in cmds:
            r = res[name]
            idle = [_run_once(cmd, empty, None, env) for _ in range(2)]
            startup = min(w for w, _ in idle)
            base_cpu = min(c for _, c in idle)
            r["load"].append(os.getloadavg()[0])
            out = tmp / f"out-{name}.jsonl"
            wall, cpu = _run_once(cmd, inp, out, env)
            r["startup"].append(startup)
            r["wall"].append(mb / max(wall - startup, 1e-9))
            r["cpu"].append(mb / max(cpu - base_cpu, 1e-9))
            digests[name].add(hashlib.sha256(out.read_bytes()).hexdigest())
            out.unlink()
    all_digests = set().union(*digests.values())
    res["identical"] = len(all_digests) == 1
    return res


def throughput_table(res: dict[str, Any], cmds: list[tuple[str, str]], corpus: str, mb: float,
                     runs: int) -> str:
    def mr(xs: list[float]) -> str:
        return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"

    L = [f"#### CLI throughput: `{corpus}`, {mb:.2f} MB of text, {runs} alternating runs per command\n",
         "| command | MB/s excl. start-up, median (range) | MB/s per CPU second, median (range) | "
         "start-up s | load average (1 min) during the runs |",
         "|---|---|---|---|---|"]
    for name, cmd in cmds:
        r = res[name]
        L.append(f"| {name}: `{cmd}` | {mr(r['wall'])} | {mr(r['cpu'])} | {statistics.median(r['startup']):.2f} | "
                 f"{min(r['load']):.1f}–{max(r['load']):.1f} |")
    if len(cmds) > 1:
        a, b = (statistics.median(res[n]["wall"]) for n, _ in cmds[:2])
        c, d = (statistics.median(res[n]["cpu"]) for n, _ in cmds[:2])
        base = cmds[-1][0]
        b = statistics.median(res[base]["wall"])
        d = statistics.median(res[base]["cpu"])
        L.append("")
        for name, _ in cmds[:-1]:
            a, c = statistics.median(res[name]["wall"]), statistics.median(res[name]["cpu"])
            L.append(f"{name} ÷ {base}: **{a / b:.2f}×** in wall time excl. start-up, **{c / d:.2f}×** per CPU "
                     "second.")
        L.append(f"Outputs (same key) byte-identical: **{'yes' if res['identical'] else 'NO'}**.")
    return "\n".join(L) + "\n"


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "n/a"


def table(label: str, res: dict[str, Any], inproc: float) -> str:
    R = res["results"]
    sw, pr = R["swarm"], R.get("presidio")
    L = [f"#### {label}: `{Path(res['corpus']).name}`, {res['records']} records, {res['bytes'] / 1e6:.2f} MB\n",
         "| entity | swarm P / R / F1 | presidio P / R / F1 | swarm leaks (verbatim/normalized) | presidio leaks |",
         "|---|---|---|---|---|"]
    for t in TYPES:
        a = sw["per_entity"][t]
        b = pr["per_entity"][t] if pr and "per_entity" in pr else None
        bs = f"{pct(b['precision'])} / {pct(b['recall'])} / {pct(b['f1'])}" if b else (
            "error" if pr else "not run")
        bl = f"{b['leaks_verbatim']}/{b['leaks_normalized']}" if b else "-"
        L.append(f"| {t} (n={a['gold']}) | {pct(a['precision'])} / {pct(a['recall'])} / {pct(a['f1'])} | {bs} | "
                 f"{a['leaks_verbatim']}/{a['leaks_normalized']} | {bl} |")
    L += ["", "| figure | swarm | presidio | swarm vs presidio |", "|---|---|---|---|"]

    def row(name: str, f: Any, fmt: str = "{}", better: str = "") -> None:
        a = f(sw)
        b = f(pr) if pr and "per_entity" in pr else None
        r = ""
        if better and b is not None and isinstance(a, float | int) and isinstance(b, float | int):
            r = ratio(a, b) if better == "high" else ratio(b, a) if a else "n/a"
        L.append(f"| {name} | {fmt.format(a)} | {('-' if pr else 'not run') if b is None else fmt.format(b)} | {r} |")

    row("overall F1 (%)", lambda x: round(100 * x["overall"]["f1"], 1), better="high")
    row("leaks verbatim / normalized", lambda x: f"{x['overall']['leaks_verbatim']} / "
        f"{x['overall']['leaks_normalized']}")
    row("FP regions", lambda x: x["overall"]["fp_regions"])
    def hn(x: dict[str, Any]) -> str:
        h = x["hard_negatives_total"]
        return f"{h['touched']}/{h['n']} ({pct(h['touched'] / max(1, h['n']))}%)"

    row("hard negatives touched", hn)
    row("clean records touched", lambda x: f"{x['totals']['clean_records_touched']}/{x['totals']['clean_records']}")
    row("JSON broken", lambda x: f"{x['totals']['json_broken']}/{x['totals']['json_records']}")
    row("MB/s, wall incl. start-up", lambda x: round(x["throughput"]["mb_per_s_wall"], 2), better="high")
    row("MB/s, excl. start-up", lambda x: "n/a (start-up > 75 % of the run)"
        if x["throughput"]["mb_per_s_excl_startup"] is None else round(x["throughput"]["mb_per_s_excl_startup"], 2),
        better="high")
    row("start-up s (empty input)", lambda x: round(x["throughput"]["startup_s"], 3))
    L.append(f"\nswarm in-process (`Scrubber.scrub`, one core, no start-up): **{inproc:.2f} MB/s**.\n")
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="synthetic records")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--big-n", type=int, default=45000, help="records of the throughput corpus (>= 20 MB of text)")
    ap.add_argument("--runs", type=int, default=3, help="alternating throughput runs per command")
    ap.add_argument("--baseline", type=Path, help="source tree to compare throughput and output with")
    ap.add_argument("--baseline-label", help="how to name the baseline tree (default: its git commit)")
    ap.add_argument("--history", default="", help="one line of earlier figures, written after the tables")
    ap.add_argument("--no-presidio", action="store_true", help="leave Presidio out (its columns read 'not run')")
    ap.add_argument("--jobs", type=int, default=2,
                    help="the throughput table also runs `--jobs 1` when this is more than 1 (default 2)")
    a = ap.parse_args()
    dev = SHARED / "corpus_dev.jsonl"
    if not dev.exists():
        raise SystemExit(f"missing {dev}")
    cmds = [("swarm", swarm_cmd())]
    if not a.no_presidio:
        py = ensure_presidio()
        cmds.append(("presidio", f"{py} {HERE / 'presidio_scrub.py'}"))
    sys.path.insert(0, str(HERE))
    import scrub_corpus

    with tempfile.TemporaryDirectory() as tmp:
        syn = Path(tmp) / f"synthetic_seed{a.seed}_n{a.n}.jsonl"
        recs = scrub_corpus.generate(a.seed, a.n)
        scrub_corpus.check(recs)
        syn.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
        res_dev = evaluate(dev, cmds, a.repeat, Path(tmp) / "dev.json")
        res_syn = evaluate(syn, cmds, a.repeat, Path(tmp) / "syn.json")
        ip_dev, ip_syn = in_process_mbps(dev), in_process_mbps(syn)
        big_recs = scrub_corpus.generate(a.seed, a.big_n)
        big = Path(tmp) / f"synthetic_seed{a.seed}_n{a.big_n}.jsonl"
        big.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n"
                               for r in big_recs), encoding="utf-8")
        big_mb = sum(len(r["text"].encode()) for r in big_recs) / 1e6
        del big_recs
        if big_mb < 20:
            raise SystemExit(f"the throughput corpus has {big_mb:.1f} MB of text; raise --big-n")
        tp_cmds = [("swarm", f"{swarm_cmd()} --jobs {a.jobs}")]
        if a.jobs > 1:
            tp_cmds.append(("swarm, one process", f"{swarm_cmd()} --jobs 1"))
        if a.baseline:
            py = REPO / ".venv" / "bin" / "python"
            tp_cmds.append(("baseline", f"PYTHONPATH={a.baseline.resolve() / 'src'} "
                                        f"{py} -m swarm.cli.commands.scrub --format jsonl"))
        tp = cli_throughput(tp_cmds, big, big_mb, a.runs, Path(tmp))
        base_label = a.baseline_label or ""
        if a.baseline and not base_label:
            rev = subprocess.run(["git", "-C", str(a.baseline), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True, check=False).stdout.strip()
            base_label = f"the source tree at commit `{rev}`" if rev else f"the source tree in `{a.baseline}`"
    md = "\n".join([
        "## PII scrubber (`swarm admin scrub`) vs Presidio rule-based recognizers",
        "",
        machine_line(),
        "",
        f"Produced by `bench/scrub.py` (evaluate.py from ../shared/pii, `--repeat {a.repeat}`, median wall time). "
        f"swarm: `{cmds[0][1].replace(str(REPO) + '/', '')}`. presidio: "
        + ("not run in this measurement (`--no-presidio`); " if a.no_presidio else "")
        + "presidio-analyzer's predefined "
        "CreditCard, Email, UsSsn, Phone and InAadhaar recognizers called directly (no NLP engine, no spaCy "
        "model), every result replaced, run as a JSONL command like swarm. The synthetic corpus is "
        f"`bench/scrub_corpus.py --seed {a.seed} --n {a.n}` (own templates, held out from the dev corpus).",
        "",
        table("dev corpus", res_dev, ip_dev),
        table("synthetic corpus", res_syn, ip_syn),
        throughput_table(tp, [(n, c.replace(str(REPO) + "/", "")) for n, c in tp_cmds],
                         f"bench/scrub_corpus.py --seed {a.seed} --n {a.big_n}", big_mb, a.runs)
        + (f"\nbaseline: {base_label}. " if a.baseline else "\n")
        + f"{os.cpu_count()} cores; `--jobs N` scrubs JSONL batches in N worker processes. "
        + "Presidio is left out of this table (at about 0.1 MB/s one run would take several minutes).\n",
        a.history,
    ])
    print(md)
    if not a.no_write:
        update_section("scrub", md)


if __name__ == "__main__":
    main()
