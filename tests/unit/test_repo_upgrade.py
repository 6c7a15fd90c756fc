"""Format version 2: a version-1 repository is refused (exit 5, naming the upgrade) until
``swarm admin repo upgrade`` adds refs to every manifest and then bumps the version; a kill -9
at any step leaves a repository that is still refused, and running the upgrade again converges
to the same result as an uninterrupted run."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from swarm import __version__
from swarm.clock import utc_iso
from swarm.crypto.keys import KeyProvider, create_key_file
from swarm.errors import ExitCode, IntegrityError
from swarm.model.manifest import Manifest
from swarm.model.refs import DataRef, WalRange, needed
from swarm.repo import Repository
from swarm.repo.format import CONFIG_KEY, FORMAT_VERSION, manifest_key
from swarm.repo.repository import BackupWriter, RepoConfig
from swarm.repo.tree import open_snapshot
from swarm.repo.upgrade import upgrade_repository
from swarm.storage.memory import MemoryStore
from tests.legacy_physical import write_legacy_physical
from tests.stores import DyingStore, Killed

SEG = 16 << 20


def commit_v1(repo: Repository, w: BackupWriter, source: dict[str, Any]) -> Manifest:
    """What the version-1 code wrote: a manifest without refs."""
    m = Manifest(id=w.id, kind=w.kind, started_at=w.started_at, finished_at=utc_iso(repo.clock.now()),
                 dek_id=w.dek_id, objects=tuple(w.entries), source=source, tool_version=__version__, version=1)
    repo._store.put(manifest_key(w.id), m.to_json(), if_absent=True)
    return m


def physical_source(tli: int, first: str, last: str) -> dict[str, Any]:
    return {"engine": "postgresql", "system_identifier": "7311", "timeline": tli, "start_lsn": "0/2000028",
            "stop_lsn": "0/2000100", "start_wal": first, "stop_wal": last, "wal_segments": [first],
            "segment_size": SEG, "stop_time": "2026-11-24T00:00:00Z", "size": 0}


def v1_repository(tmp: Path) -> tuple[MemoryStore, KeyProvider, dict[str, str]]:
    """A version-1 repository holding a logical, two block-index physical (the second reusing the
    first's blocks) and two objects backups (the second reading the first's copied version)."""
    store = MemoryStore()
    kek = create_key_file(tmp / "k")
    repo = Repository.init(store, kek)
    wal_dek_id, _ = repo._new_dek()  # version 1 sealed WAL with a data key named in cluster.json
    store.put("cluster.json", json.dumps({"system_identifier": "7311", "wal_dek_id": wal_dek_id,
                                          "segment_size": SEG}).encode())
    ids: dict[str, str] = {}
    w = repo.begin_backup("pg-logical")
    w.put_object("pgdump/toc.dat", [b"toc"])
    ids["logical"] = commit_v1(repo, w, {"engine": "postgresql", "database": "app", "row_counts": {}}).id
    files = tmp / "pgdata"
    (files / "base" / "1").mkdir(parents=True)
    (files / "base" / "1" / "1259").write_bytes(os.urandom(100_000))
    (files / "PG_VERSION").write_bytes(b"15\n")
    os.symlink("base", files / "link")
    p1 = write_legacy_physical(repo, files, physical_source(1, "000000010000000000000002", "000000010000000000000002"),
                               version_1=True)
    ids["physical1"] = p1.id
    (files / "PG_VERSION").write_bytes(b"15\n\n")
    p2 = write_legacy_physical(repo, files, physical_source(1, "000000010000000000000004", "000000010000000000000005"),
                               known=open_snapshot(repo, p1).referenced_blocks(), version_1=True)
    ids["physical2"] = p2.id
    w = repo.begin_backup("objects")
    w.put_object("versions/aa", [b"v1 bytes"])
    line = {"key": "k", "version_id": "v1", "data": {"backup": w.id, "object": "versions/aa"}}
    w.put_object("inventory.jsonl", [json.dumps(line).encode() + b"\n"])
    o1 = commit_v1(repo, w, {"engine": "s3", "bucket": "b", "copy_data": True, "references": []})
    ids["objects1"] = o1.id
    w = repo.begin_backup("objects")
    line = {"key": "k", "version_id": "v1", "data": {"backup": o1.id, "object": "versions/aa"}}
    w.put_object("inventory.jsonl", [json.dumps(line).encode() + b"\n"])
    ids["objects2"] = commit_v1(repo, w, {"engine": "s3", "bucket": "b", "copy_data": True,
                                          "references": [o1.id]}).id
    c = repo.config
    store.put(CONFIG_KEY, RepoConfig(c.repo_id, 1, c.created_at, c.kek_id, c.key_check, c.features).to_json())
    return store, kek, ids


def copy(store: MemoryStore) -> MemoryStore:
    out = MemoryStore()
    out.objects = dict(store.objects)
    return out


def state(store: MemoryStore) -> dict[str, bytes]:
    """What the store holds, sealed metadata opened (sealing is randomized: each run seals the same
    plaintext to other bytes under its own metadata secret, whose file is compared by presence)."""
    from swarm.repo.metadata import is_sealed

    kek = _KEK[0] if _KEK else None
    repo = Repository.open(store, kek, for_upgrade=True) if kek is not None else None
    out = {}
    for k, (raw, _) in store.objects.items():
        if k == "keys/meta.json":
            out[k] = b"<metadata secret>"
        elif is_sealed(raw) and repo is not None:
            out[k] = b"sealed:" + repo._get_sealed(k, k)
        else:
            out[k] = raw
    return out


_KEK: list[object] = []  # the key state() opens sealed metadata with (set by the tests that compare)


def test_new_repository_is_version_2(tmp_path: Path) -> None:
    store = MemoryStore()
    Repository.init(store, create_key_file(tmp_path / "k"))
    assert json.loads(store.get(CONFIG_KEY))["format_version"] == FORMAT_VERSION == 2


def test_version_1_is_refused_with_the_upgrade_hint(tmp_path: Path) -> None:
    store, kek, _ = v1_repository(tmp_path)
    before = state(store)
    with pytest.raises(IntegrityError) as ei:
        Repository.open(store, kek)
    assert ei.value.exit_code == ExitCode.INTEGRITY == 5
    assert "format version 1" in ei.value.message and "swarm admin repo upgrade" in (ei.value.hint or "")
    assert state(store) == before  # nothing written


def test_upgrade_adds_refs_from_indexes_and_inventories(tmp_path: Path) -> None:
    store, kek, ids = v1_repository(tmp_path)
    res = upgrade_repository(store, kek)
    assert res.changed and sorted(res.upgraded) == sorted(ids.values()) and not res.damaged
    repo = Repository.open(store, kek)
    ms = {m.id: m for m in repo.list_backups()}
    assert all(m.version == 2 and m.refs is not None for m in ms.values())
    wal_dek = str((repo.cluster_identity() or {})["wal_dek_id"])
    p1, p2 = ms[ids["physical1"]], ms[ids["physical2"]]
    assert p1.refs is not None and p2.refs is not None
    # the second physical backup reads blocks from the first's packs: both are in its refs
    assert {r.backup_id for r in p2.refs.packs} == {p1.id, p2.id}
    assert set(p2.refs.deks) == {p1.dek_id, p2.dek_id, wal_dek}
    assert p2.refs.wal == (WalRange(1, "000000010000000000000004", "000000010000000000000005"),)
    # a backup's refs cover every block its index names
    for m in (p1, p2):
        assert m.refs is not None
        for loc in open_snapshot(repo, m).referenced_blocks().values():
            assert DataRef(loc.backup_id, loc.pack_name()) in m.refs.packs and loc.dek_id in m.refs.deks
    o1, o2 = ms[ids["objects1"]], ms[ids["objects2"]]
    assert o2.refs is not None and o2.refs.objects == (DataRef(o1.id, "versions/aa"),)
    assert set(o2.refs.deks) == {o1.dek_id, o2.dek_id}
    assert o1.refs is not None and o1.refs.objects == ()  # its own copy is one of its objects
    # keeping only the newest of each pair still keeps what they read from the older ones
    need = needed([p2, o2])
    assert any(need.needs_data(p1.id, r.name) for r in p1.refs.packs if r.backup_id == p1.id)
    assert need.needs_data(o1.id, "versions/aa") and o1.dek_id in need.deks
    assert not need.unreferenced
    # idempotent: a second run changes nothing
    before = state(store)
    again = upgrade_repository(store, kek)
    assert not again.changed and state(store) == before


def test_missing_refs_names_what_is_gone(tmp_path: Path) -> None:
    store, kek, ids = v1_repository(tmp_path)
    upgrade_repository(store, kek)
    repo = Repository.open(store, kek)
    o2 = repo.load_manifest(ids["objects2"])
    assert repo.missing_refs(o2) == []
    store.delete(f"data/{ids['objects1']}/versions/aa")
    missing = repo.missing_refs(o2)
    assert [w for w, _ in missing] == [f"data/{ids['objects1']}/versions/aa"]
    assert ids["objects1"] in missing[0][1]
    p2 = repo.load_manifest(ids["physical2"])
    wal = [w for w, _ in repo.missing_refs(p2)]
    assert wal == ["000000010000000000000004", "000000010000000000000005"]  # no WAL was archived here


def test_kill_9_at_every_step_then_rerun_converges(tmp_path: Path) -> None:
    pristine, kek, ids = v1_repository(tmp_path)
    _KEK[:] = [kek]
    reference = copy(pristine)
    upgrade_repository(reference, kek)
    expected = state(reference)
    steps = len(ids) + 2  # the metadata secret, one put per manifest, then the config
    for die_at in range(1, steps + 1):
        store = copy(pristine)
        with pytest.raises(Killed):
            upgrade_repository(DyingStore(store, die_at), kek)  # type: ignore[arg-type]
        # half upgraded: still version 1, so every command still refuses it
        with pytest.raises(IntegrityError, match="format version 1"):
            Repository.open(store, kek)
        res = upgrade_repository(store, kek)
        assert res.changed and len(res.already) == max(die_at - 2, 0)
        assert len(res.upgraded) + len(res.already) == len(ids)
        got = state(store)
        assert set(got) == set(expected)
        for key in expected:
            assert got[key] == expected[key], key
        assert Repository.open(store, kek).config.format_version == 2
