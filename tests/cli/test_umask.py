"""Everything ``swarm`` writes is private whatever the caller's umask (issue 10, finding 8)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def _swarm() -> str:
    return str(Path(sys.executable).with_name("swarm"))


def test_cli_runs_with_umask_077(tmp_path: Path) -> None:
    key = tmp_path / "fresh" / "keys" / "repo.key"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env["HOME"] = str(tmp_path / "home")
    # a caller with the usual 022 umask: without our own umask the directories would be 0755
    r = subprocess.run(["sh", "-c", 'umask 022; exec "$0" admin keys init --path "$1"', _swarm(), str(key)],
                       env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    for p in (key, key.parent, key.parent.parent):
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p} is {oct(mode)}"


def test_wal_fast_path_sets_umask_077() -> None:
    code = ("import os; os.umask(0o022)\n"
            "from swarm.services.wal.fastpath import fast_main\n"
            "assert fast_main(['--help']) is None\n"
            "print(oct(os.umask(0)))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0o77"
