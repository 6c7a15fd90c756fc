"""Physical backups + archived WAL + point-in-time recovery against a real primary whose
archive_command is `swarm admin wal push %p` (run as the server user).

Sentinel rows are written around every recovery target; each restore asserts exactly which
sentinels exist. Tests run in file order: the new-timeline test comes last because the
timeline it creates changes what "latest" means for the archive.
"""
from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from swarm.config import load_settings
from swarm.errors import RefusedError, SwarmError
from swarm.model import wal
from swarm.model.targets import RecoveryTarget
from swarm.repo.format import wal_key
from swarm.services.context import open_repository, server_access
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.postgres.pitr import execute_pitr, plan_pitr
from swarm.services.repository.verify import verify_backup
from swarm.services.wal.archive import push_wal, wal_status
from swarm.sources.netutil import free_port
from swarm.sources.postgres.cluster import LocalCluster
from tests.physical.conftest import PhysEnv

pytestmark = pytest.mark.integration


@dataclass
class Scenario:
    before_backup_time: str = ""
    backup1: str = ""
    backup2: str = ""
    backup1_stored: int = 0
    backup2_stored: int = 0
    t1: str = ""  # after s1, before s2
    lsn2: str = ""  # end of s2's commit
    xid3: str = ""  # s3's transaction
    name4: str = ""  # restore point after s4
    restored: list[LocalCluster] = field(default_factory=list)


def wait_archived(env: PhysEnv, timeout: float = 30) -> str:
    """Switch WAL and wait until the closed segment is in the repository; return its name."""
    seg = env.cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    env.cluster.psql("SELECT pg_switch_wal()")
    repo = env.repo()
    deadline = time.monotonic() + timeout
    while repo._store.stat(wal_key(seg)) is None:
        assert time.monotonic() < deadline, f"{seg} was not archived in {timeout} s"
        time.sleep(0.2)
    return seg


def sentinel(env: PhysEnv, label: str) -> None:
    env.cluster.psql(f"INSERT INTO sentinel (label) VALUES ('{label}')")


@pytest.fixture(scope="module")
def sc(phys: PhysEnv) -> Iterator[Scenario]:
    s = Scenario()
    c = phys.cluster
    c.psql("CREATE TABLE sentinel (id serial PRIMARY KEY, label text NOT NULL, "
           "at timestamptz DEFAULT clock_timestamp())")
    # ~25 MB of data that stays put between the two backups (frozen, so no hint-bit rewrites later)
    c.psql("CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 4) AS pad FROM generate_series(1, 150000) g")
    c.psql("VACUUM FREEZE bulk")
    c.psql("CHECKPOINT")
    s.before_backup_time = c.psql("SELECT clock_timestamp()")
    time.sleep(0.2)
    r1 = backup_postgres_physical(phys.repo(), phys.url)
    s.backup1, s.backup1_stored = r1.manifest.id, r1.stats["stored_new_bytes"]
    sentinel(phys, "s1")
    time.sleep(0.2)
    s.t1 = c.psql("SELECT clock_timestamp()")
    time.sleep(0.2)
    sentinel(phys, "s2")
    s.lsn2 = c.psql("SELECT pg_current_wal_insert_lsn()")
    # second backup through the CLI: only a little changed, so it stores few new bytes
    out = json.loads(phys.cli("admin", "backup", "postgres", "--physical", "--json", "--db-url", phys.url).stdout)
    s.backup2, s.backup2_stored = out["id"], out["stored_new_bytes"]
    s.xid3 = c.psql("WITH i AS (INSERT INTO sentinel (label) VALUES ('s3') RETURNING 1) "
                    "SELECT pg_current_xact_id() FROM i")
    sentinel(phys, "s4")
    s.name4 = "rp-" + secrets.token_hex(3)
    phys.cli("admin", "restore-point", s.name4, "--db-url", phys.url)
    sentinel(phys, "s5")
    wait_archived(phys)
    yield s
    for rc in s.restored:
        rc.destroy()


def restore(phys: PhysEnv, sc: Scenario, tmp: Path, target: RecoveryTarget, *, archive: bool = False,
            primary_url: str | None = None) -> tuple[LocalCluster, dict[str, object]]:
    repo = phys.repo()
    datadir = tmp / f"restored-{secrets.token_hex(3)}"
    plan = plan_pitr(repo, target, datadir, start=True, primary_url=primary_url)
    res = execute_pitr(repo, plan, server_access(phys.settings), bindir=phys.settings.pg_bindir, archive=archive,
                       timeout=120)
    rc = LocalCluster(datadir.parent, port=res.port or 0, pgdata=datadir)
    sc.restored.append(rc)
    return rc, res.to_dict()


def labels(c: LocalCluster) -> list[str]:
    return c.psql("SELECT string_agg(label, ',' ORDER BY id) FROM sentinel").split(",")


@pytest.fixture(scope="module")
def tmpdir_pg(phys: PhysEnv) -> Path:
    d = phys.root / "restores"
    d.mkdir(exist_ok=True)
    d.chmod(0o755)
    return d


def test_backups_dedup_and_verify(phys: PhysEnv, sc: Scenario) -> None:
    repo = phys.repo()
    m1, m2 = repo.load_manifest(sc.backup1), repo.load_manifest(sc.backup2)
    assert m1.source["system_identifier"] == m2.source["system_identifier"]
    assert m2.source["dedup_base"] == sc.backup1
    assert m1.source["size"] > 25_000_000
    # the second backup after a small change stores far fewer bytes than the first
    assert sc.backup2_stored < sc.backup1_stored / 3, (sc.backup1_stored, sc.backup2_stored)
    assert m2.source["reused_bytes"] > 0.8 * m2.source["size"]
    for bid in (sc.backup1, sc.backup2):
        v = verify_backup(repo, bid)
        assert v.ok, v.problems


@pytest.mark.parametrize("kind", ["time", "lsn", "xid", "name", "latest"])
def test_restore_to_each_target(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path, kind: str) -> None:
    value = {"time": sc.t1, "lsn": sc.lsn2, "xid": sc.xid3, "name": sc.name4, "latest": ""}[kind]
    expected = {"time": ["s1"], "lsn": ["s1", "s2"], "xid": ["s1", "s2", "s3"], "name": ["s1", "s2", "s3", "s4"],
                "latest": ["s1", "s2", "s3", "s4", "s5"]}[kind]
    rc, res = restore(phys, sc, tmpdir_pg, RecoveryTarget(kind, value))
    try:
        assert labels(rc) == expected
        plan = res["plan"]
        assert isinstance(plan, dict)
        # the right base backup: the time and LSN targets are before the second backup ended
        assert plan["backup_id"] == (sc.backup1 if kind in ("time", "lsn") else sc.backup2)
        assert res["restored_lsn"] and res["timeline"] == 2
        assert rc.psql("SELECT pg_is_in_recovery()") == "f"
    finally:
        rc.destroy()


def test_refuses_target_before_oldest_backup(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path) -> None:
    with pytest.raises(RefusedError) as ei:
        plan_pitr(phys.repo(), RecoveryTarget("time", sc.before_backup_time), tmpdir_pg / "x")
    assert "earliest restorable" in (ei.value.hint or "")
    r = phys.cli("admin", "restore", "physical", "--target-time", sc.before_backup_time,
                 "--datadir", str(tmpdir_pg / "y"), "--json", check=False)
    assert r.returncode == 8 and json.loads(r.stdout)["error"] == "target-out-of-range"


def test_refuses_target_beyond_newest_wal(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path) -> None:
    with pytest.raises(RefusedError) as ei:
        plan_pitr(phys.repo(), RecoveryTarget("time", "2999-01-01T00:00:00Z"), tmpdir_pg / "x")
    assert "newest reachable time" in (ei.value.hint or "")
    with pytest.raises(RefusedError, match="beyond the newest archived WAL"):
        plan_pitr(phys.repo(), RecoveryTarget("lsn", "FF/0"), tmpdir_pg / "x")
    with pytest.raises(RefusedError, match="not recorded"):
        plan_pitr(phys.repo(), RecoveryTarget("name", "never-made"), tmpdir_pg / "x")


def test_time_after_last_commit_but_reachable_recovers_everything(phys: PhysEnv, sc: Scenario,
                                                                  tmpdir_pg: Path) -> None:
    """The newest reachable time is accepted: with no archived commit after it, the plan
    replays everything archived (PostgreSQL itself would stop with 'target not reached')."""
    with pytest.raises(RefusedError) as ei:
        plan_pitr(phys.repo(), RecoveryTarget("time", "2999-01-01T00:00:00Z"), tmpdir_pg / "x")
    newest = ei.value.details["newest_reachable"]["newest_time"]  # type: ignore[index]
    plan = plan_pitr(phys.repo(), RecoveryTarget("time", newest), tmpdir_pg / "x")
    assert plan.target.kind == "latest" and "no archived transaction after" in plan.newest_reachable["note"]


def test_refuses_nonempty_or_running_datadir(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path) -> None:
    busy = tmpdir_pg / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    with pytest.raises(RefusedError, match="not empty"):
        plan_pitr(phys.repo(), RecoveryTarget("latest"), busy)
    with pytest.raises(RefusedError, match="running"):
        plan_pitr(phys.repo(), RecoveryTarget("latest"), phys.cluster.datadir)
    r = phys.cli("admin", "restore", "physical", "--target-latest", "--datadir", str(busy), check=False)
    assert r.returncode == 8 and "not empty" in r.stderr


def test_dry_run_plans_without_writing(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path) -> None:
    target = tmpdir_pg / "dry"
    out = json.loads(phys.cli("admin", "restore", "physical", "--latest", "--target-xid", sc.xid3,
                              "--datadir", str(target), "--dry-run", "--json").stdout)
    assert out["dry_run"] and out["plan"]["backup_id"] == sc.backup2 and not target.exists()


def _copy_repo(phys: PhysEnv, tmp_path: Path) -> Path:
    """A copy of the repository (with its own config) to damage without touching the shared one."""
    dst = tmp_path / "repo-copy"
    shutil.copytree(phys.repo_dir, dst)
    cfg = tmp_path / "copy.toml"
    cfg.write_text(phys.config.read_text().replace(str(phys.repo_dir), str(dst)))
    return cfg


def test_wal_gap_is_refused_and_reported(phys: PhysEnv, sc: Scenario, tmp_path: Path, tmpdir_pg: Path) -> None:
    cfg = _copy_repo(phys, tmp_path)
    repo = open_repository(load_settings(cfg))
    m2 = repo.load_manifest(sc.backup2)
    # drop the segment right after the second backup's WAL: restore beyond it must name it
    victim = wal.parse_segment(m2.source["stop_wal"]).next().name
    repo._store.delete(wal_key(victim))
    with pytest.raises(RefusedError) as ei:
        plan_pitr(repo, RecoveryTarget("latest"), tmpdir_pg / "gap")
    assert victim in ei.value.message
    st = wal_status(repo)
    assert not st.ok and {"timeline": "1", "missing": victim} in st.gaps
    r = phys.cli("admin", "wal", "status", "--json", check=False, config=cfg)
    assert r.returncode == 1 and {"timeline": "1", "missing": victim} in json.loads(r.stdout)["gaps"]
    # verify names a missing segment the backup itself needs
    repo._store.delete(wal_key(m2.source["start_wal"]))
    v = verify_backup(repo, sc.backup2)
    assert not v.ok and any(p["where"] == m2.source["start_wal"] for p in v.problems)


def test_damaged_unrelated_manifest_does_not_block_wal_status_or_restore(phys: PhysEnv, sc: Scenario,
                                                                        tmp_path: Path, tmpdir_pg: Path) -> None:
    """One flipped byte in another backup's manifest: wal status and physical restores go on, naming it;
    only asking for that very backup fails."""
    cfg = _copy_repo(phys, tmp_path)
    repo = open_repository(load_settings(cfg))
    other = "20261127T000000Z-objects-0badc0"
    blob = bytearray(repo._store.get(f"backups/{sc.backup1}.json"))
    blob[len(blob) // 2] ^= 0x01
    repo._store.put(f"backups/{other}.json", bytes(blob))
    r = phys.cli("admin", "wal", "status", "--json", config=cfg)
    out = json.loads(r.stdout)
    assert out["ok"] and any(other in w for w in out["warnings"])
    for args in (["--target-latest"], [sc.backup2, "--target-latest"]):
        r = phys.cli("admin", "restore", "physical", *args, "--datadir", str(tmpdir_pg / "dmg-dry"),
                     "--dry-run", "--json", config=cfg)
        plan = json.loads(r.stdout)["plan"]
        assert plan["backup_id"] == sc.backup2 and any(other in w for w in plan["warnings"])
    r = phys.cli("admin", "restore", "physical", other, "--target-latest", "--datadir",
                 str(tmpdir_pg / "dmg-dry"), "--dry-run", "--json", config=cfg, check=False)
    assert r.returncode == 5 and json.loads(r.stdout)["error"] == "integrity"


def test_damaged_wal_stops_restore_with_an_integrity_error(phys: PhysEnv, sc: Scenario, tmp_path: Path,
                                                           tmpdir_pg: Path) -> None:
    import os

    from swarm.errors import IntegrityError
    from swarm.sources.postgres.cluster import LocalCluster as Cluster

    # the copy must be readable by the server user, who runs restore_command
    work = tmpdir_pg / f"dmg-{secrets.token_hex(3)}"
    work.mkdir()
    work.chmod(0o755)  # explicit: mkdir(mode=) is masked by the umask
    cfg = _copy_repo(phys, work)
    st = phys.repo_dir.stat()
    for dirpath, _dirs, files in os.walk(work / "repo-copy"):
        os.chown(dirpath, st.st_uid, st.st_gid)
        for f in files:
            os.chown(os.path.join(dirpath, f), st.st_uid, st.st_gid)
    settings = load_settings(cfg)
    repo = open_repository(settings)
    m2 = repo.load_manifest(sc.backup2)
    victim = wal.parse_segment(m2.source["stop_wal"]).next().name
    key = wal_key(victim)
    blob = bytearray(repo._store.get(key))
    blob[len(blob) // 2] ^= 0x01
    repo._store.put(key, bytes(blob))
    datadir = tmpdir_pg / f"damaged-{secrets.token_hex(3)}"
    plan = plan_pitr(repo, RecoveryTarget("latest"), datadir, backup_id=sc.backup2, start=True)
    try:
        with pytest.raises(IntegrityError) as ei:
            execute_pitr(repo, plan, server_access(settings), bindir=settings.pg_bindir, archive=False, timeout=120)
        assert victim in ei.value.message and "cannot be read" in ei.value.message
    finally:
        Cluster(datadir.parent, pgdata=datadir).destroy()


def test_wal_push_duplicate_and_conflict(phys: PhysEnv, sc: Scenario, tmp_path: Path) -> None:
    cfg = _copy_repo(phys, tmp_path)
    repo = open_repository(load_settings(cfg))
    name = repo.load_manifest(sc.backup1).source["start_wal"]
    data = repo.get_wal(name)
    wal_dir = tmp_path / "pg_wal"
    wal_dir.mkdir()
    f = wal_dir / name
    f.write_bytes(data)
    assert push_wal(repo, f, push_ahead=0).outcome == "duplicate"
    changed = bytearray(data)
    changed[100_000] ^= 0xFF
    f.write_bytes(bytes(changed))
    with pytest.raises(RefusedError, match="different content"):
        push_wal(repo, f, push_ahead=0)
    assert repo.get_wal(name) == data  # the archived one is kept...
    st = wal_status(repo)
    assert st.conflicts and st.conflicts[0].startswith(name)  # ...and the new one beside it


def test_wal_push_refuses_another_cluster(phys: PhysEnv, sc: Scenario, pg_cluster: LocalCluster,
                                          tmp_path: Path) -> None:
    other = pg_cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    src = pg_cluster.datadir / "pg_wal" / other
    f = tmp_path / other
    shutil.copyfile(src, f)
    r = phys.cli("admin", "wal", "push", str(f), check=False)
    assert r.returncode == 8 and "belongs to PostgreSQL cluster" in r.stderr
    with pytest.raises(RefusedError, match="belongs to PostgreSQL cluster"):
        backup_postgres_physical(phys.repo(), pg_cluster.url())


def test_wal_fetch_cli(phys: PhysEnv, sc: Scenario, tmp_path: Path) -> None:
    name = phys.repo().load_manifest(sc.backup1).source["start_wal"]
    dest = tmp_path / "RECOVERYXLOG"
    phys.cli("admin", "wal", "fetch", name, str(dest), "--prefetch", "0")
    assert dest.read_bytes() == phys.repo().get_wal(name)
    r = phys.cli("admin", "wal", "fetch", "0000000100000000000000FE", str(tmp_path / "nope"), check=False)
    assert r.returncode == 1 and r.stderr == "" and not (tmp_path / "nope").exists()
    r = phys.cli("admin", "wal", "fetch", "00000009.history", str(tmp_path / "h"), check=False)
    assert r.returncode == 1


def test_wal_status_cli_reports_lag(phys: PhysEnv, sc: Scenario) -> None:
    out = json.loads(phys.cli("admin", "wal", "status", "--db-url", phys.url, "--json").stdout)
    assert out["ok"] and out["gaps"] == [] and out["timelines"][0]["timeline"] == 1
    assert out["server"]["lag_bytes"] >= 0 and out["system_identifier"] == phys.repo().cluster_identity()[
        "system_identifier"]  # type: ignore[index]


def test_restored_copy_does_not_archive_by_default(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path) -> None:
    """A restored copy is not production: with the default, its new timeline never reaches the archive."""
    d = tmpdir_pg / f"noarch-{secrets.token_hex(3)}"
    out = json.loads(phys.cli("admin", "restore", "physical", "--target-time", sc.t1, "--datadir",
                              str(d), "--start", "--json").stdout)
    rc = LocalCluster(d.parent, port=out["port"], pgdata=d)
    sc.restored.append(rc)
    assert out["archive"] is False and rc.psql("SHOW archive_mode") == "off"
    rc.psql("INSERT INTO sentinel (label) VALUES ('copy')")
    rc.psql("SELECT pg_switch_wal()")
    time.sleep(1.5)
    names = {i.key.rsplit("/", 1)[-1] for i in phys.repo()._store.list("wal/")}
    assert not any(n.endswith(".history") for n in names), names
    rc.destroy()


def test_failed_recovery_removes_what_it_created_unless_kept(phys: PhysEnv, sc: Scenario, tmp_path: Path,
                                                            tmpdir_pg: Path) -> None:
    """A recovery that fails after the server started removes its data directory, log and spool (and says so);
    --keep-failed keeps them."""
    from swarm.services.wal.archive import spool_root

    datadir = tmpdir_pg / f"fail-{secrets.token_hex(3)}"
    r = phys.cli("admin", "restore", "physical", "--target-lsn", "FF/0", "--datadir", str(datadir),
                 "--start", "--json", check=False)
    assert r.returncode == 8  # refused at planning: nothing created
    assert not datadir.exists()
    # a real failure after start: the recovery target is an xid that never commits on this timeline,
    # so the server stops with "recovery ended before configured recovery target was reached"
    plan = plan_pitr(phys.repo(), RecoveryTarget("latest"), datadir, start=True)
    plan = replace(plan, target=RecoveryTarget("xid", "999999999"))
    with pytest.raises(SwarmError) as ei:
        execute_pitr(phys.repo(), plan, server_access(phys.settings), timeout=120)
    assert "Removed what the failed restore created" in (ei.value.hint or "")
    assert not datadir.exists() and not spool_root(datadir).exists()
    assert not (datadir.parent / f"{datadir.name}.log").exists()
    kept = tmpdir_pg / f"kept-{secrets.token_hex(3)}"
    plan = replace(plan_pitr(phys.repo(), RecoveryTarget("latest"), kept, start=True),
                   target=RecoveryTarget("xid", "999999999"))
    try:
        with pytest.raises(SwarmError) as ei:
            execute_pitr(phys.repo(), plan, server_access(phys.settings), keep_failed=True, timeout=120)
        assert "kept for inspection" in (ei.value.hint or "")
        assert (kept / "PG_VERSION").exists() and (kept.parent / f"{kept.name}.log").exists()
    finally:
        LocalCluster(kept.parent, pgdata=kept).destroy()


def test_restore_killed_mid_way_leaves_a_directory_the_next_restore_refuses(phys: PhysEnv, sc: Scenario,
                                                                             tmpdir_pg: Path) -> None:
    """kill -9 while the files are written: what execute_pitr's docstring says is left (a partial data
    directory, no server) is refused by the next restore into it, which names it."""
    import os
    import signal
    import subprocess

    from tests.physical.conftest import SWARM

    d = tmpdir_pg / f"killed-{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(phys.root / "home")
    proc = subprocess.Popen([*SWARM, "--config", str(phys.config), "admin", "restore", "physical", "--target-latest",
                             "--datadir", str(d), "--start"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (d / "base").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the restore never started writing"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert d.exists() and not (d / "postmaster.pid").exists()
    r = phys.cli("admin", "restore", "physical", "--target-latest", "--datadir", str(d), "--json", check=False)
    assert r.returncode == 8 and json.loads(r.stdout)["error"] == "datadir-not-empty"
    LocalCluster(d.parent, pgdata=d).destroy()


def test_restore_points_are_not_reused_silently(phys: PhysEnv, sc: Scenario) -> None:
    r = phys.cli("admin", "restore-point", sc.name4, "--db-url", phys.url, "--json", check=False)
    assert r.returncode == 8 and json.loads(r.stdout)["error"] == "restore-point-exists" and "--replace" in r.stdout
    listed = json.loads(phys.cli("admin", "restore-points", "--json").stdout)["restore_points"]
    assert [p["name"] for p in listed if p["name"] == sc.name4] == [sc.name4]


def test_copy_that_archived_a_timeline_does_not_change_what_recovery_follows(phys: PhysEnv, sc: Scenario,
                                                                            tmpdir_pg: Path) -> None:
    """A restored copy made the new primary by mistake (--archive) archives timeline 2 into the repository.
    Later restores still follow the primary's timeline 1 (twice, with a time target after the branch and to
    the end), a name moved with --replace is reached at its new position, and timeline 2 is followed only
    when asked (or when the primary cannot be asked), with a warning."""
    d1 = tmpdir_pg / "tl2"
    out = json.loads(phys.cli("admin", "restore", "physical", "--target-time", sc.t1, "--datadir",
                              str(d1), "--start", "--archive", "--json").stdout)
    assert out["timeline"] == 2 and out["last_transaction_time"] and out["archive"] is True
    rc = LocalCluster(d1.parent, port=out["port"], pgdata=d1)
    sc.restored.append(rc)
    assert labels(rc) == ["s1"]
    rc.psql("INSERT INTO sentinel (label) VALUES ('t2')")
    seg = rc.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    rc.psql("SELECT pg_switch_wal()")
    repo = phys.repo()
    deadline = time.monotonic() + 30
    while repo._store.stat(wal_key(seg)) is None or repo._store.stat(wal_key("00000002.history")) is None:
        assert time.monotonic() < deadline, "timeline 2 was not archived"
        time.sleep(0.2)
    rc.destroy()
    # the primary goes on on timeline 1, with a restore point moved to a later position
    sentinel(phys, "s6")
    t6 = phys.cluster.psql("SELECT clock_timestamp()")
    time.sleep(0.2)
    sentinel(phys, "s7")
    phys.cli("admin", "restore-point", sc.name4, "--replace", "--db-url", phys.url)
    sentinel(phys, "s8")
    wait_archived(phys)
    primary = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"]
    # 1) to the end, following the primary's timeline: the primary's data, not the copy's
    rc2, res = restore(phys, sc, tmpdir_pg, RecoveryTarget("latest"), primary_url=phys.url)
    try:
        assert labels(rc2) == primary
        plan = res["plan"]
        assert isinstance(plan, dict)
        assert plan["timelines"] == [1] and "primary" in plan["timeline_reason"]
        assert any("timeline 2 branches" in w for w in plan["warnings"])
    finally:
        rc2.destroy()
    # 2) to a time archived on timeline 1 after the copy branched off: accepted and reached
    rc3, _ = restore(phys, sc, tmpdir_pg, RecoveryTarget("time", t6), primary_url=phys.url)
    try:
        assert labels(rc3) == primary[:6]
    finally:
        rc3.destroy()
    # 3) to the moved restore point: its new position, not the first record of that name in the WAL
    rc4, _ = restore(phys, sc, tmpdir_pg, RecoveryTarget("name", sc.name4), primary_url=phys.url)
    try:
        assert labels(rc4) == primary[:7]
    finally:
        rc4.destroy()
    # 4) the copy's timeline only when asked for, through the CLI, which says what it follows
    d5 = tmpdir_pg / "follow-tl2"
    r = phys.cli("admin", "restore", "physical", "--target-latest", "--target-timeline", "2",
                 "--datadir", str(d5), "--start", "--json")
    out = json.loads(r.stdout)
    rc5 = LocalCluster(d5.parent, port=out["port"], pgdata=d5)
    sc.restored.append(rc5)
    try:
        assert labels(rc5) == ["s1", "t2"] and out["plan"]["timelines"] == [1, 2]
    finally:
        rc5.destroy()
    # 5) no primary configured while timeline 1 went on after the copy branched: ambiguous, refused
    #    (following the newest timeline would return the copy's data in a disaster, when the primary is down)
    r = phys.cli("admin", "restore", "physical", "--target-latest", "--datadir",
                 str(tmpdir_pg / "dry-tl"), "--dry-run", "--json", check=False)
    err = json.loads(r.stdout)
    assert r.returncode == 8 and err["error"] == "timeline-mismatch", err
    assert "--target-timeline 1" in err["hint"] and "--target-timeline 2" in err["hint"]
    assert "no primary is configured" in err["message"]
    r = phys.cli("admin", "restore", "physical", "--target-latest", "--target-timeline", "latest", "--datadir",
                 str(tmpdir_pg / "dry-tl"), "--dry-run")
    assert "following timeline 2" in r.stderr and "timeline 1 has archived WAL after this history left it" in r.stderr
    r = phys.cli("admin", "restore", "physical", "--target-latest", "--db-url", phys.url,
                 "--datadir", str(tmpdir_pg / "dry-tl"), "--dry-run")
    assert "following timeline 1" in r.stderr and "timeline 2 branches off timeline 1" in r.stderr


def test_restore_parents_are_traversable_under_umask_077(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path) -> None:
    """The CLI runs with umask 077; the data directory's parents a restore creates must still
    let the server user through (0755), or it cannot reach its own data directory."""
    import os
    import stat

    top = tmpdir_pg / f"umask-{secrets.token_hex(3)}"
    datadir = top / "nested" / "data"
    old = os.umask(0o077)
    try:
        plan = plan_pitr(phys.repo(), RecoveryTarget("lsn", sc.lsn2), datadir, start=False,
                         primary_url=phys.url)
        execute_pitr(phys.repo(), plan, server_access(phys.settings), bindir=phys.settings.pg_bindir,
                     archive=False, timeout=120)
    finally:
        os.umask(old)
    try:
        for d in (top, top / "nested"):
            assert stat.S_IMODE(d.stat().st_mode) == 0o755, d
        assert stat.S_IMODE(datadir.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_server_user_holds_no_key_that_decrypts_backups(phys: PhysEnv, sc: Scenario, tmpdir_pg: Path) -> None:
    """Issue #10, finding 2: the PostgreSQL server user used to get a copy of the key-encryption key
    (``repo.key``), and the copy made for a restore was never removed. Now it holds the WAL push key
    (archive, not read); the WAL read key exists only while a restore runs."""
    import base64

    from swarm.crypto.keys import load_key_file
    from swarm.errors import KeyMissing
    from swarm.repo import Repository
    from swarm.storage.local import LocalStore

    access_dir = phys.access.directory
    # grants already there: the fixture's own, and one a restore killed by an earlier test left (a kill -9
    # leaves its grant, as server_access.py says); this test is about a restore that ends
    before = {p.name for p in access_dir.glob("wal-read-*.key")}
    restore(phys, sc, tmpdir_pg, RecoveryTarget("latest"), primary_url=phys.url)  # a restore came and went
    kek = json.loads(Path(phys.settings.key_url.removeprefix("file://")).read_text())["key"]  # type: ignore[union-attr]
    for f in access_dir.iterdir():
        data = f.read_bytes()
        assert kek.encode() not in data and base64.b64decode(kek) not in data, f"{f} holds the key-encryption key"
        assert b"swarm-kek/1" not in data
    # the restore's read grant is gone (the test fixture's own grant aside)
    grants = {p.name for p in access_dir.glob("wal-read-*.key")} - before
    assert grants == set()
    # with what the server user keeps, nothing of a backup can be read; WAL is written but not read
    push = load_key_file(access_dir / "wal-push.key")
    repo = Repository.open(LocalStore(phys.repo_dir), push, check_key=False)
    m = phys.repo().load_manifest(sc.backup1)
    with pytest.raises(KeyMissing, match="can only archive WAL"):
        b"".join(repo.read_object(m, m.objects[0].name))
    with pytest.raises(KeyMissing, match="can only archive WAL"):
        repo.load_manifest(sc.backup1)
    name = next(w.name for w in phys.repo().wal_files() if len(w.name) == 24 and not w.conflict)
    with pytest.raises(KeyMissing, match="can only archive WAL"):
        repo.get_wal(name)
    # a restore without --start leaves the grant for the operator's start; the server removes it at
    # the end of recovery (recovery_end_command)
    datadir = tmpdir_pg / "nostart"
    plan = plan_pitr(phys.repo(), RecoveryTarget("latest"), datadir, start=False, primary_url=phys.url)
    access = server_access(phys.settings)
    execute_pitr(phys.repo(), plan, access, bindir=phys.settings.pg_bindir, timeout=120)
    assert access.read_key is not None and access.read_key.exists()
    rc = LocalCluster(datadir.parent, port=free_port(), pgdata=datadir)
    rc.set_port(rc.port)
    rc.start(timeout=120)
    sc.restored.append(rc)
    deadline = time.monotonic() + 60
    while access.read_key.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not access.read_key.exists() and not (access.fetch_config and access.fetch_config.exists())
