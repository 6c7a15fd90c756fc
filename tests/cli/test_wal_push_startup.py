"""``swarm admin wal push`` is PostgreSQL's archive_command: one process per WAL segment, and
``pg_backup_stop`` (every physical backup's end) waits for it. It must not pay for what it
does not use: the PostgreSQL driver and the S3 library cost ~0.4 s of start-up together."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from swarm.crypto.keys import create_key_file

PROBE = """
import json, sys
sys.argv = ["swarm", "admin", "wal", "push", sys.argv[1]]
from swarm.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "boto3", "botocore", "s3transfer"))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_wal_push_to_a_local_repository_imports_neither_psycopg_nor_boto3(tmp_path: Path) -> None:
    segment = tmp_path / "pg_wal" / "000000010000000000000003"
    segment.parent.mkdir()
    # a segment's long page header (magic, XLP_LONG_HEADER, timeline 1, page address, rem_len,
    # padding, system identifier, segment size, block size): what says which cluster it is from
    header = struct.pack("<HHIQII QII", 0xD110, 0x0002, 1, 3 * (16 << 20), 0, 0, 7_300_000_000_000_000_001,
                         16 << 20, 8192)
    segment.write_bytes(header + os.urandom((1 << 16) - len(header)) + bytes((16 << 20) - (1 << 16)))
    create_key_file(tmp_path / "keys" / "repo.key")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env.update(SWARM_HOME=str(tmp_path / "home"), SWARM_BACKUP_REPO=f"file://{tmp_path / 'repo'}",
               SWARM_KEY_URL=f"file://{tmp_path / 'keys' / 'repo.key'}")
    r = subprocess.run([sys.executable, "-c", PROBE, str(segment)], capture_output=True, text=True, env=env,
                       timeout=120, check=False)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["code"] == 0, r.stderr  # the push worked: the probe measured a real archive_command
    assert (tmp_path / "repo").is_dir()
    assert out["heavy"] == [], f"wal push imported {out['heavy']}"
