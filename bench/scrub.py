"""Benchmark the PII scrubber against Presidio's rule-based recognizers.

    .venv/bin/python bench/scrub.py [--n 3000] [--seed 7] [--repeat 3]

Runs ../shared/pii/evaluate.py on the dev corpus and on a synthetic held-out
corpus (bench/scrub_corpus.py, generated from the seed) for

* swarm: ``swarm admin scrub --format jsonl`` (or ``python -m swarm.cli.commands.scrub``);
* presidio: bench/presidio_scrub.py in ``.venv-bench`` (created here if missing,
  ``pip install presidio-analyzer``; pattern/rule recognizers only, no model),

both as commands, so throughput includes process start-up for both.  Writes
the figures into the ``scrub`` section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
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
        bs = f"{pct(b['precision'])} / {pct(b['recall'])} / {pct(b['f1'])}" if b else "error"
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
        L.append(f"| {name} | {fmt.format(a)} | {'-' if b is None else fmt.format(b)} | {r} |")

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
    a = ap.parse_args()
    dev = SHARED / "corpus_dev.jsonl"
    if not dev.exists():
        raise SystemExit(f"missing {dev}")
    py = ensure_presidio()
    cmds = [("swarm", swarm_cmd()), ("presidio", f"{py} {HERE / 'presidio_scrub.py'}")]
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
    md = "\n".join([
        "## PII scrubber (`swarm admin scrub`) vs Presidio rule-based recognizers",
        "",
        machine_line(),
        "",
        f"Produced by `bench/scrub.py` (evaluate.py from ../shared/pii, `--repeat {a.repeat}`, median wall time). "
        f"swarm: `{cmds[0][1].replace(str(REPO) + '/', '')}`. presidio: presidio-analyzer's predefined "
        "CreditCard, Email, UsSsn, Phone and InAadhaar recognizers called directly (no NLP engine, no spaCy "
        "model), every result replaced, run as a JSONL command like swarm. The synthetic corpus is "
        f"`bench/scrub_corpus.py --seed {a.seed} --n {a.n}` (own templates, held out from the dev corpus).",
        "",
        table("dev corpus", res_dev, ip_dev),
        table("synthetic corpus", res_syn, ip_syn),
    ])
    print(md)
    if not a.no_write:
        update_section("scrub", md)


if __name__ == "__main__":
    main()
