"""Clusters swarm starts let no other local user in, and a killed run's throwaway cluster is
stopped by the next run (issue 10, finding 3), and the restore test never takes a connection
string from the manifest (issue 10, finding 1).

The attacks run as the unprivileged user ``nobody`` (the tests run as root in CI), with
``psql``: libpq, the same client library psycopg uses. ``nobody`` cannot run this
virtualenv's Python (it lives under ``/root``), so psql is the client.
"""
from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from swarm.crypto.keys import LocalKeyFile
from swarm.repo import Repository
from swarm.services.postgres.logical_backup import backup_postgres_logical
from swarm.services.reporting import NullReporter
from swarm.services.repository import verify as verify_mod
from swarm.services.repository.verify import RESTORE_TEST_DB, VerifyResult, restore_test_conninfo
from swarm.sources.postgres.cluster import (
    DATADIR_PASSWORD_FILE,
    PASSWORD_FILE,
    RELOCATE_ROOT,
    LocalCluster,
    postgres_pids_in,
)
from swarm.sources.postgres.conn import connect, create_database, with_dbname
from tests.conftest import new_database

pytestmark = pytest.mark.integration
SWARM = str(Path(sys.executable).parent / "swarm")
STEAL = "COPY (SELECT 1) TO STDOUT"  # what would follow is COPY ... FROM PROGRAM 'cat /root/.swarm/keys/repo.key'


def _nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.fail("these attacks need to run as root, to become 'nobody' (CI runs as root)")
    return pwd.getpwnam("nobody")


def _psql_as_nobody(bindir: Path, host: str, port: int, dbname: str, user: str = "swarm",
                    password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Connect as the OS user ``nobody`` (no password unless given) and try to run SQL."""
    who = _nobody()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/", "LC_ALL": "C.UTF-8"}
    if password:
        env["PGPASSWORD"] = password
    return subprocess.run([str(bindir / "psql"), "-X", "-w", "-A", "-t", "-h", host, "-p", str(port), "-U", user,
                           "-d", dbname, "-c", STEAL], user=who.pw_uid, group=who.pw_gid, extra_groups=[],
                          env=env, cwd="/", capture_output=True, text=True, timeout=30, check=False)


def _refused(r: subprocess.CompletedProcess[str]) -> bool:
    return r.returncode != 0 and r.stdout.strip() != "1"


def test_pg_hba_of_a_cluster_swarm_creates_has_no_trust_line(pg_cluster: LocalCluster) -> None:
    lines = [ln.split() for ln in (pg_cluster.datadir / "pg_hba.conf").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines and all(ln[-1] == "scram-sha-256" for ln in lines), lines


def test_nobody_cannot_connect_to_a_cluster_swarm_started(pg_cluster: LocalCluster) -> None:
    """The attack of the finding: any local user connected as superuser (trust on 127.0.0.1)."""
    assert pg_cluster.bindir is not None
    for user in ("swarm", "postgres", "nobody"):
        r = _psql_as_nobody(pg_cluster.bindir, "127.0.0.1", pg_cluster.port, "postgres", user=user)
        assert _refused(r), (user, r.stdout, r.stderr)
        assert "password" in r.stderr or "authentication" in r.stderr, r.stderr
    r = _psql_as_nobody(pg_cluster.bindir, "127.0.0.1", pg_cluster.port, "postgres", password="guess")
    assert _refused(r) and "password authentication failed" in r.stderr, r.stderr
    # the password is ours: a 0600 file owned by us; the copy in PGDATA belongs to the server user
    own = (pg_cluster.base / PASSWORD_FILE).stat()
    assert stat.S_IMODE(own.st_mode) == 0o600 and own.st_uid == os.geteuid()
    assert stat.S_IMODE((pg_cluster.datadir / DATADIR_PASSWORD_FILE).stat().st_mode) == 0o600
    # and we, who hold it, still get in: psycopg with the URL, psql with PGPASSWORD
    with connect(pg_cluster.url("postgres")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("swarm",)
    assert pg_cluster.psql("SELECT 1") == "1"


def test_a_reopened_cluster_finds_its_password(pg_cluster: LocalCluster) -> None:
    """Callers that build a LocalCluster on an existing base (the dev stack) or on a data
    directory (a physical copy of one) need no password handed to them."""
    again = LocalCluster(pg_cluster.base, port=pg_cluster.port)
    assert again.psql("SELECT 2") == "2"
    by_datadir = LocalCluster(pg_cluster.datadir.parent, port=pg_cluster.port, pgdata=pg_cluster.datadir)
    assert by_datadir.psql("SELECT 3") == "3"


# ---- the restore test ------------------------------------------------------------------------
def test_restore_test_conninfo_holds_only_the_clusters_own_parts(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "c", port=54329, password="pw-1")
    parts = conninfo_to_dict(restore_test_conninfo(cluster))
    assert parts == {"host": "127.0.0.1", "port": "54329", "user": "swarm", "dbname": RESTORE_TEST_DB,
                     "password": "pw-1"}


def _logical_backup(tmp_path: Path, kek: LocalKeyFile, url: str) -> tuple[Repository, str]:
    from swarm.storage.factory import open_store

    repo = Repository.init(open_store(f"file://{tmp_path / 'repo'}"), kek)
    return repo, backup_postgres_logical(repo, url, jobs=1).manifest.id


def _verify_manifest(repo: Repository, manifest: Any, work: Path) -> VerifyResult:
    """Run the verify service on a manifest object (as if it had passed its checks)."""
    result = VerifyResult(manifest.id)
    return verify_mod._verify(repo, manifest, result, restore_test=True, jobs=1, work_dir=str(work),
                              reporter=NullReporter(), bindir=None, env=None, sample=0, t0=time.monotonic())


def test_restore_test_ignores_a_database_name_that_redirects_it(tmp_path: Path, kek: LocalKeyFile,
                                                                pg_cluster: LocalCluster) -> None:
    """The manifest's ``source.database`` once became part of the restore test's URL:
    ``x?port=<other cluster>&dbname=attacker_db`` restored every row into another server."""
    db = new_database(pg_cluster, runs=3, size_mb=0.1)
    repo, backup_id = _logical_backup(tmp_path, kek, db)
    attacker = "attacker_" + backup_id[-6:].lower().replace("-", "_")
    create_database(pg_cluster.url("postgres"), attacker)
    manifest = repo.load_manifest(backup_id)
    manifest.source["database"] = f"x?port={pg_cluster.port}&dbname={attacker}"
    seen: list[str] = []
    real = verify_mod.restore_into

    def spy(repo_: Repository, manifest_: Any, url: str, *args: Any, **kw: Any) -> None:
        seen.append(url)
        real(repo_, manifest_, url, *args, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(verify_mod, "restore_into", spy)
    try:
        work = tmp_path / "work"
        res = _verify_manifest(repo, manifest, work)
    finally:
        mp.undo()
    with connect(with_dbname(pg_cluster.url("postgres"), attacker)) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,), "the restore test wrote into the attacker's database"
    assert seen and conninfo_to_dict(seen[0])["dbname"] == RESTORE_TEST_DB
    assert "attacker" not in seen[0] and str(pg_cluster.port) not in seen[0].split("port=")[1].split()[0]
    assert res.restore_test is not None and res.restore_test.validated, res.problems


def test_nobody_cannot_connect_to_the_restore_test_cluster_while_it_runs(tmp_path: Path, kek: LocalKeyFile,
                                                                       pg_cluster: LocalCluster) -> None:
    db = new_database(pg_cluster, runs=3, size_mb=0.1)
    repo, backup_id = _logical_backup(tmp_path, kek, db)
    attempts: list[subprocess.CompletedProcess[str]] = []
    real = verify_mod.restore_into

    def attack(repo_: Repository, manifest_: Any, url: str, *args: Any, **kw: Any) -> None:
        real(repo_, manifest_, url, *args, **kw)  # the restored rows are there now
        parts = conninfo_to_dict(url)
        assert pg_cluster.bindir is not None
        for dbname in (str(parts["dbname"]), "postgres"):
            attempts.append(_psql_as_nobody(pg_cluster.bindir, str(parts["host"]), int(str(parts["port"])), dbname))

    mp = pytest.MonkeyPatch()
    mp.setattr(verify_mod, "restore_into", attack)
    try:
        res = verify_mod.verify_backup(repo, backup_id, restore_test=True, work_dir=str(tmp_path / "work"))
    finally:
        mp.undo()
    assert res.restore_test is not None and res.restore_test.validated, res.problems
    assert len(attempts) == 2
    for r in attempts:
        assert _refused(r), (r.stdout, r.stderr)
        assert "password" in r.stderr, r.stderr


# ---- a killed verify's cluster -------------------------------------------------------------------
def _env(tmp_path: Path, kek: LocalKeyFile, db: str, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AWS_", "PG"))}
    env.update(SWARM_HOME=str(tmp_path / "home" / ".swarm"), SWARM_KEY_URL=str(kek.path),
               SWARM_BACKUP_REPO=f"file://{tmp_path / 'repo'}", SWARM_DB_URL=db, SWARM_WORK_DIR=str(work),
               COLUMNS="200")
    return env


def _running_throwaway(work: Path, pid: int) -> tuple[Path, Path] | None:
    """(work directory, data directory) of the restore test's cluster of verify ``pid``, once its
    server accepts connections (``postmaster.pid`` says ``ready``; initdb's bootstrap backend
    also writes that file, and dies with initdb)."""
    for d in work.glob(f"swarm-verify-{pid}-*"):
        datadir = (d / "cluster").resolve() / "data"
        try:
            lines = (datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            continue
        if len(lines) >= 8 and lines[7].strip() == "ready" and postgres_pids_in(datadir):
            return d, datadir
    return None


def _kill_verify_while_its_cluster_runs(env: dict[str, str], backup_id: str, work: Path) -> tuple[Path, Path] | None:
    """Start ``verify --restore-test``, kill -9 its process group once its cluster serves, and return
    (work directory, data directory) of the cluster left running; None when verify had just
    stopped the cluster itself (a clean stop removes ``postmaster.pid``): the kill came too late
    to show anything, try again. A server that died with swarm (``postmaster.pid`` left behind,
    no process) fails the test."""
    proc = subprocess.Popen([SWARM, "admin", "verify", backup_id, "--restore-test"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    found = None
    try:
        deadline = time.monotonic() + 120
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            found = _running_throwaway(work, proc.pid)
            time.sleep(0.02)
        assert found is not None, "the restore test's cluster was never seen running"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    time.sleep(0.5)
    datadir = found[1]
    if postgres_pids_in(datadir):
        return found
    assert not (datadir / "postmaster.pid").exists(), "the server died with swarm: nothing left to sweep"
    return None


def test_a_killed_verifys_cluster_is_stopped_and_removed_by_the_next_run(tmp_path: Path, kek: LocalKeyFile,
                                                                         pg_cluster: LocalCluster) -> None:
    """kill -9 of ``swarm admin verify --restore-test`` while its throwaway cluster runs: the
    server survives its owner (it runs in a session of its own) and keeps serving the restored
    rows. The next verify stops it and removes its directories."""
    db = new_database(pg_cluster, runs=60, size_mb=24)
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path, kek, db, work)
    r = subprocess.run([SWARM, "admin", "backup", "postgres", "--json"], env=env, capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    backup_id = json.loads(r.stdout)["id"]
    for _ in range(3):
        found = _kill_verify_while_its_cluster_runs(env, backup_id, work)
        if found is not None:
            break
    assert found is not None, "each time, verify had stopped its cluster itself just before the kill"
    vdir, datadir = found
    real = datadir.parent
    if os.geteuid() == 0:  # meanwhile it lets no one else in
        assert pg_cluster.bindir is not None
        port = int((datadir / "postmaster.pid").read_text().splitlines()[3])
        attempt = _psql_as_nobody(pg_cluster.bindir, "127.0.0.1", port, RESTORE_TEST_DB)
        assert _refused(attempt), attempt.stdout
    r = subprocess.run([SWARM, "admin", "verify", backup_id, "--json"], env=env, capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert str(vdir) in out["swept"]
    deadline = time.monotonic() + 10
    while postgres_pids_in(datadir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert postgres_pids_in(datadir) == [], "a postgres process of the killed run's cluster still runs"
    assert not vdir.exists() and not real.exists()
    if real.parent == RELOCATE_ROOT.resolve():
        assert not any(p.name == real.name for p in RELOCATE_ROOT.iterdir())


def test_sigterm_during_the_restore_test_stops_its_cluster(tmp_path: Path, kek: LocalKeyFile,
                                                          pg_cluster: LocalCluster) -> None:
    """SIGTERM (cron's or Kubernetes' timeout) ends verify like Ctrl-C: its cluster is stopped
    and its directories removed before it exits, with nothing left for a sweep."""
    db = new_database(pg_cluster, runs=60, size_mb=24)
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path, kek, db, work)
    r = subprocess.run([SWARM, "admin", "backup", "postgres", "--json"], env=env, capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    backup_id = json.loads(r.stdout)["id"]
    proc = subprocess.Popen([SWARM, "admin", "verify", backup_id, "--restore-test"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = None
    try:
        deadline = time.monotonic() + 120
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            found = _running_throwaway(work, proc.pid)
            time.sleep(0.02)
        assert found is not None, "the restore test's cluster was never seen running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    vdir, datadir = found
    assert postgres_pids_in(datadir) == []
    assert not vdir.exists() and not datadir.parent.exists()
