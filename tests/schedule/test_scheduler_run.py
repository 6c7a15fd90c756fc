"""One real run of a short schedule (seconds apart) against real PostgreSQL: logical backups every
4 s with a heartbeat, a verify chained after each, a job that fails, is retried once and calls its
on_failure command and webhook; SIGTERM stops the scheduler cleanly; the job history is in the
repository; a restarted scheduler records the slots it missed and catches the newest up once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import tomli_w

from swarm.crypto.keys import create_key_file

SWARM = [sys.executable, "-m", "swarm.cli.main"]


class Hooks:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        hooks = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hooks.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(home)
    return env


def _lines(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def test_a_short_schedule_runs_for_real(tmp_path: Path, swarm_db: str) -> None:
    hooks = Hooks()
    key = create_key_file(tmp_path / "keys" / "repo.key")
    hook_out = tmp_path / "on_failure.jsonl"
    hook = tmp_path / "page-oncall"
    hook.write_text(f"#!{sys.executable}\nimport sys, os\nopen({str(hook_out)!r}, 'a').write("
                    "os.environ['SWARM_JOB'] + ' ' + sys.stdin.read() + '\\n')\n")
    hook.chmod(0o755)
    home = tmp_path / "home"
    (home / "cron").mkdir(parents=True)
    (home / "cron" / "jobs.json").write_text("[]")
    cfg = tmp_path / "swarm.toml"
    base = f"http://127.0.0.1:{hooks.port}"
    cfg.write_text(tomli_w.dumps({
        "repository": {"url": f"file://{tmp_path / 'repo'}", "key": f"file://{key.path}"},
        "database": {"url": swarm_db},
        "schedule": {
            "logical": {"cron": "* * * * * */4", "command": "backup postgres", "heartbeat": f"{base}/ping"},
            "verify": {"after": "logical", "command": "verify {latest}"},
            "broken": {"cron": "* * * * * */6", "command": "backup postgres --db-url postgresql://nobody@127.0.0.1:1/x",
                       "retries": 1, "retry_backoff": "1s", "on_failure": str(hook), "webhook": f"{base}/hook"},
        }}))
    # the scheduler opens an existing repository (it never creates one)
    from swarm.config import load_settings
    from swarm.services.context import open_repository
    os.environ["SWARM_HOME"] = str(home)
    open_repository(load_settings(cfg), create=True)

    proc = subprocess.Popen([*SWARM, "--config", str(cfg), "admin", "scheduler", "run", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home))
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def enough() -> bool:  # what the assertions below need, however slow the machine is today
        ends = [e for e in _lines("".join(seen)) if e["event"] == "run-end"]
        ok = [e for e in ends if e["job"] == "logical" and e["outcome"] == "succeeded"]
        broken = [e for e in ends if e["job"] == "broken" and e.get("final") and e["outcome"] == "failed"
                  and e["attempt"] == 2]
        verified = [e for e in ends if e["job"] == "verify" and e["outcome"] == "succeeded"]
        return len(ok) >= 2 and bool(broken) and bool(verified)

    deadline = time.monotonic() + 90
    time.sleep(16)
    while not enough() and time.monotonic() < deadline:
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    out = "".join(seen)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, out + err
    events = _lines(out)  # every line of the log is JSON
    assert events[0]["event"] == "scheduler-start" and events[-1]["event"] == "scheduler-stop"
    ends = [e for e in events if e["event"] == "run-end"]
    logical = [e for e in ends if e["job"] == "logical" and e["outcome"] == "succeeded"]
    assert len(logical) >= 2 and all(e["backup_id"] for e in logical)
    verify = [e for e in ends if e["job"] == "verify"]
    assert verify and all(e["trigger"] == "after:logical" for e in verify)
    assert any(e["outcome"] == "succeeded" for e in verify)
    # a broken run whose slot met the logical backup's lock is skipped (recorded as such): not a failure
    # (and one SIGTERM interrupted is recorded as interrupted, not failed)
    broken = [e for e in ends if e["job"] == "broken" and e["outcome"] not in ("skipped", "interrupted")]
    assert broken and any(e["outcome"] == "failed" and e["error_code"] == "database-unavailable" for e in broken)
    # a retried slot: its first attempt failed and was not final, the retry (attempt 2) was final.
    # (Another slot's retry may have met the logical lock or the SIGTERM: look at the one enough() saw.)
    retries = [e for e in broken if e["attempt"] == 2 and e["final"] is True and e["outcome"] == "failed"]
    assert retries and all(e["trigger"] == "retry" for e in retries), out
    firsts = [e for e in broken if e["slot"] == retries[0]["slot"] and e["attempt"] == 1]
    assert firsts and firsts[0]["final"] is False and firsts[0]["outcome"] == "failed", out
    # hooks: on_failure got the run as JSON on stdin, the webhook got it POSTed, the heartbeat pinged
    paged = [ln.split(" ", 1) for ln in hook_out.read_text().splitlines() if ln.strip()]
    assert paged and paged[0][0] == "broken" and json.loads(paged[0][1])["outcome"] == "failed"
    assert any(p == "/hook" and b["run"]["job"] == "broken" and b["run"]["final"] for p, b in hooks.posts)
    assert sum(1 for p, b in hooks.posts if p == "/ping" and b["job"] == "logical") == len(logical)

    # the history is in the repository, one record per run that ended
    h = subprocess.run([*SWARM, "--config", str(cfg), "admin", "scheduler", "history", "--json"],
                       capture_output=True, text=True, env=_env(home), check=True)
    runs = json.loads(h.stdout)["runs"]
    assert len([x for x in runs if x["outcome"] != "missed" and x["outcome"] != "skipped"]) == len(ends)

    # downtime: a restarted scheduler records the slots it missed and runs the newest once
    time.sleep(9)
    out2 = subprocess.run([*SWARM, "--config", str(cfg), "admin", "scheduler", "run", "--for", "3"],
                          capture_output=True, text=True, env=_env(home), timeout=120, check=False)
    assert out2.returncode == 0, out2.stdout + out2.stderr
    ev2 = _lines(out2.stdout)
    missed = [e for e in ev2 if e["event"] == "slot-missed" and e["job"] == "logical"]
    assert missed, out2.stdout
    catch = [e for e in ev2 if e["event"] == "run-start" and e["job"] == "logical"]
    assert catch and catch[0]["trigger"] == "catch-up"
    assert {e["slot"] for e in missed}.isdisjoint({e["slot"] for e in catch})
