"""`make demo`: the main job on the embedded default stack, start to finish.

up → seed → backup → verify (with a test restore) → restore into a new database → row
counts match → summary → down. Runs in ./.swarm-demo (removed at the end), so it never
touches ~/.swarm. Exits non-zero if any step fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
SWARM = str(Path(sys.executable).parent / "swarm")
HOME = ROOT / ".swarm-demo"
console = Console(highlight=False)
steps: list[tuple[str, float, str]] = []


def swarm(*args: str, json_out: bool = True, env_extra: dict[str, str] | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(HOME)
    env.update(env_extra or {})
    cmd = [SWARM, *args] + (["--json"] if json_out else [])
    console.print(f"[dim]$ swarm {' '.join(args)}{' --json' if json_out else ''}[/]")
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - t0
    if r.returncode != 0:
        console.print(r.stdout[-3000:], r.stderr[-3000:], markup=False)
        raise SystemExit(f"demo step failed: swarm {' '.join(args)} (exit {r.returncode})")
    return (json.loads(r.stdout) if json_out else r.stdout), took


def step(name: str, *args: str, env_extra: dict[str, str] | None = None) -> Any:
    out, took = swarm(*args, env_extra=env_extra)
    steps.append((name, took, ""))
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def transfer_demo(run_id: str) -> None:
    """prod → dev without PII: export one run scrubbed, import it into a second, empty deployment."""
    archive = HOME / f"run-{run_id}-scrubbed.tar.gz"
    e = step("export one run, scrubbed", "admin", "export", "--run-id", run_id, "--scrub", "--output", str(archive))
    found = e["scrub_report"]["by_type"]
    steps[-1] = (steps[-1][0], steps[-1][1], f"{sum(e['rows'].values())} rows, {e['objects']} objects; PII redacted: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(found.items())))
    dev = step("create an empty dev deployment", "dev", "scratch", "swarm_dev")
    i = step("import the run into it", "admin", "import", str(archive), env_extra=dev["env"])
    steps[-1] = (steps[-1][0], steps[-1][1], f"run {i['run_id']} imported: {sum(i['rows'].values())} rows, "
                                             f"{i['objects']} objects")


def main() -> None:
    HOME.mkdir(exist_ok=True)
    HOME.chmod(0o755)
    try:
        info = step("start the embedded stack", "dev", "up")
        console.print(f"  PostgreSQL {info['db_url']}\n  SeaweedFS  {info['objects_endpoint']} (DR "
                      f"{info['dr_objects_endpoint']})\n  repository {info['repo']}")
        seeded = step("seed a deployment", "dev", "seed", "--runs", "200", "--size-mb", "40")
        console.print(f"  {seeded['runs']} runs, {seeded['events']} events, {seeded['objects']} objects, "
                      f"{seeded['state_files']} state files")
        b = step("logical backup of PostgreSQL", "admin", "backup", "postgres", "--jobs", "2")
        steps[-1] = (steps[-1][0], steps[-1][1], f"{b['id']}: {mb(b['size'])} dumped, {mb(b['stored_size'])} stored")
        v = step("verify, with a test restore", "admin", "verify", b["id"], "--restore-test")
        if not v["ok"]:
            raise SystemExit(f"verify failed: {v['problems']}")
        steps[-1] = (steps[-1][0], steps[-1][1], f"{v['objects_checked']} objects checked, row counts match "
                                                 f"in a throwaway cluster")
        target = info["db_url"].rsplit("/", 1)[0] + "/swarm_restored"
        r = step("restore into a new database", "admin", "restore", "postgres", b["id"], "--target-db", target,
                 "--create", "--jobs", "2")
        if not r["validated"]:
            raise SystemExit(f"restore did not validate: {r['tables']}")
        rows = sum(t["restored"] for t in r["tables"].values())
        steps[-1] = (steps[-1][0], steps[-1][1], f"{len(r['tables'])} tables, {rows} rows, every count matches")
        console.print(f"  point swarm at it: export SWARM_DB_URL='{r['swarm_db_url']}'")
        transfer_demo(seeded["run_ids"][0])
    finally:
        swarm("dev", "down", "--purge")
    t = Table(title="swarm demo", show_edge=False, header_style="bold")
    t.add_column("step")
    t.add_column("seconds", justify="right")
    t.add_column("result")
    for name, took, detail in steps:
        t.add_row(name, f"{took:.1f}", detail)
    console.print(t)
    console.print("[bold green]demo complete[/]: backup taken, proven restorable, restored and validated.")


if __name__ == "__main__":
    main()
