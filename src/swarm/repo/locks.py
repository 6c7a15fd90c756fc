"""Repository locks: per-name exclusive locks, and the repository's shared/exclusive lock.

Three kinds of lock object live under ``locks/``:

* **named locks** ``locks/<name>.json`` (``RepoLock``): one holder per name, created with
  a conditional put. The per-kind backup locks (``backup-postgres``, ...) are named locks,
  so a second backup of the same kind while one runs fails (LockedError, exit 6) naming
  the holder.
* **shared holders** ``locks/repository/shared-<id>.json`` (``SharedLock``, and the WAL
  lease ``hold_wal_lease``): every process that writes data to the repository holds one
  while it writes. Any number may exist at once.
* **the exclusive holder** ``locks/repository/exclusive.json`` (``ExclusiveLock``):
  maintenance that deletes (prune) holds it. Its ``state`` is ``waiting`` while it waits
  for shared holders to finish, ``held`` once it owns the repository.

Mutual exclusion rests on write-then-look on a store whose list and get see every put
that returned before them (local files, S3): a shared taker writes its record, then
reads the exclusive record; the exclusive taker writes ``state: held``, then lists the
shared records. Whichever writes second sees the other, so they never both proceed. A
shared taker that sees ``held`` removes its record and fails (or waits); one that sees
``waiting`` proceeds (running backups win over a waiting prune, so prune never makes
backups wait), and the exclusive taker, seeing it, goes back to ``waiting``.

Stale rules (all kinds): a record whose heartbeat is older than its ``stale_after`` (a
lease: its ``ttl``) is stale, and so is one whose holder ran on this host under a pid
that is gone (not for leases, whose writer exits after each push). A stale record is
deleted by whoever finds it in the way. The holder rewrites its record every
``refresh_every`` seconds; if a refresh finds the record gone or re-owned, or no refresh
has succeeded for ``stale_after`` seconds, the lock is *lost*: ``ensure_held`` raises, so
the work stops before it commits (a commit also reads the record back, see
``ensure_held(check_store=True)``).

The WAL lease (``hold_wal_lease``) is a shared record per cluster data directory that
lives across ``wal push`` runs, so the common push does no lock round trip: it is
refreshed only when the time the caller remembers (in the push spool) is older than
``WAL_LEASE_REFRESH`` of its TTL, and the pusher stops relying on it after
``WAL_LEASE_USABLE`` of its TTL, while an exclusive taker treats it as live for the
whole TTL; the difference is the margin for clock skew between hosts and for a push in
flight.

Crash behaviour: a killed holder leaves its record; it blocks until stale (at once on
the same host for a dead pid). Nothing is lost by that: the lock only keeps prune out.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from swarm.clock import Clock, SystemClock, parse_iso, utc_iso
from swarm.errors import LockedError
from swarm.procs import pid_alive
from swarm.repo.format import EXCLUSIVE_LOCK_KEY, SHARED_LOCKS_PREFIX, lock_key, shared_lock_key
from swarm.storage.base import ObjectExists, ObjectNotFound, Store

WAL_LEASE_TTL = 600.0  # seconds an exclusive taker treats a WAL lease as live after its refresh
WAL_LEASE_REFRESH = 0.2  # a push refreshes the lease once it is older than this fraction of the TTL
WAL_LEASE_USABLE = 0.5  # a push relies on a lease no older than this fraction of the TTL


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    user: str
    command: str
    started_at: str
    heartbeat_at: str
    token: str
    mode: str = "named"  # named | shared | exclusive | lease
    state: str = "held"  # exclusive only: waiting | held
    ttl: float | None = None  # leases: seconds of validity after heartbeat_at
    stale_after: float | None = None  # the holder's own stale limit, if it recorded one
    key: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], key: str) -> Holder:
        return cls(str(d["host"]), int(d["pid"]), str(d["user"]), str(d["command"]), str(d["started_at"]),
                   str(d["heartbeat_at"]), str(d["token"]), str(d.get("mode", "named")), str(d.get("state", "held")),
                   float(d["ttl"]) if d.get("ttl") is not None else None,
                   float(d["stale_after"]) if d.get("stale_after") is not None else None, key)

    def describe(self) -> str:
        what = f"`{self.command}`" + (" (waiting)" if self.mode == "exclusive" and self.state == "waiting" else "")
        if self.mode == "lease":
            return f"{what} on {self.host} (user {self.user}, last push {self.heartbeat_at})"
        return f"pid {self.pid} on {self.host} (user {self.user}, {what}, since {self.started_at})"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "key"}



def _argv_command() -> str:
    """What the holder runs, for the operator who finds the lock: the program and its command words
    (``swarm admin backup postgres``), never an option or its value. The repository is readable by
    more people than the process list, and a ``--db-url`` value carries a password."""
    args = list(sys.argv[1:])
    if args[:1] == ["--config"]:
        args = args[2:]  # the root option, before the command words
    words = [os.path.basename(sys.argv[0])] if sys.argv else []
    for a in args:
        if a.startswith("-") or "/" in a or ":" in a or "@" in a or "=" in a:
            break  # options (and values such as paths and URLs) follow the command words
        words.append(a)
    return " ".join(words)


def read_record(store: Store, key: str, clock: Clock) -> Holder | None:
    """The holder recorded at ``key``; None if there is none.

    An unreadable record (its writer crashed mid-put on a store without atomic puts) is
    reported as a holder with unknown fields and its mtime as heartbeat: it blocks until
    stale like any other."""
    try:
        d: dict[str, Any] = json.loads(store.get(key))
        return Holder.from_dict(d, key)
    except ObjectNotFound:
        return None
    except (ValueError, KeyError, TypeError):
        info = store.stat(key)
        ts = utc_iso(info.modified) if info and info.modified else utc_iso(clock.now())
        return Holder("?", -1, "?", "?", ts, ts, "?", key=key)


def is_stale(h: Holder, now: datetime, stale_after: float) -> bool:
    age = (now - parse_iso(h.heartbeat_at)).total_seconds()
    if h.mode == "lease":
        return age > (h.ttl if h.ttl is not None else WAL_LEASE_TTL)
    if age > (h.stale_after if h.stale_after is not None else stale_after):
        return True
    return h.host == socket.gethostname() and h.pid > 0 and not pid_alive(h.pid)


class _HeldRecord:
    """A lock record this process owns and keeps fresh with a heartbeat thread."""

    mode = "named"

    def __init__(self, store: Store, key: str, label: str, *, command: str | None, clock: Clock | None,
                 stale_after: float, refresh_every: float) -> None:
        self.store = store
        self.key = key
        self.label = label
        self.clock = clock or SystemClock()
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.command = command or _argv_command()
        self.token = secrets.token_hex(8)
        self.state = "held"
        self._started = utc_iso(self.clock.now())
        self._refreshed = self.clock.now()
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None
        self._held = False

    def _body(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "user": getpass.getuser(),
                           "command": self.command[:200], "started_at": self._started,
                           "heartbeat_at": utc_iso(self.clock.now()), "token": self.token, "mode": self.mode,
                           "state": self.state, "stale_after": self.stale_after}).encode()

    def _write(self, *, if_absent: bool = False) -> None:
        now = self.clock.now()
        self.store.put(self.key, self._body(), if_absent=if_absent)
        self._refreshed = now

    def _rewrite_own(self) -> None:
        """Rewrite our record, unless someone broke it (we were frozen past ``stale_after``) and took it."""
        holder = self.read_holder()
        if holder is None or holder.token != self.token:
            raise LockedError(f"lost the repository lock '{self.label}' while waiting: the lock object was removed "
                              "or taken over by another process", hint="Run the operation again.")
        self._write()

    def read_holder(self) -> Holder | None:
        return read_record(self.store, self.key, self.clock)

    def _start_heartbeat(self) -> None:
        self._held = True
        self._thread = threading.Thread(target=self._heartbeat, name=f"lock-{self.label}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                holder = self.read_holder()
                if holder is None or holder.token != self.token:
                    self._lost = "the lock object was removed or taken over by another process"
                    return
                self._write()
            except Exception as exc:  # keep trying; ensure_held reports the lock lost once it may be stale
                self._last_error = str(exc)

    def ensure_held(self, *, check_store: bool = False) -> None:
        """Raise ``LockedError`` if the lock is lost or may have been broken as stale; call before committing.

        Lost means: a refresh found the record gone or re-owned, or no refresh succeeded for
        ``stale_after`` seconds (another process may already have broken it). With
        ``check_store`` the record is also read back and must still carry this holder's token.
        """
        if not self._held:
            return
        if self._lost is None:
            age = (self.clock.now() - self._refreshed).total_seconds()
            if age > self.stale_after:
                err = getattr(self, "_last_error", None)
                self._lost = (f"it was not renewed for {age:.0f} s (longer than {self.stale_after:.0f} s)"
                              + (f": {err}" if err else ""))
        if self._lost is None and check_store:
            holder = self.read_holder()
            if holder is None or holder.token != self.token:
                self._lost = "the lock object was removed or taken over by another process"
        if self._lost:
            raise LockedError(f"lost the repository lock '{self.label}': {self._lost}",
                              hint="Another process may have broken it as stale; nothing was committed. "
                                   "Run the operation again.")

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def release(self) -> None:
        """Stop the heartbeat and delete the record if it is still ours; never raises for a lost lock."""
        self._stop_heartbeat()
        self._held = False
        try:
            holder = self.read_holder()
            if holder is not None and holder.token == self.token:
                self.store.delete(self.key)
        except Exception:  # the record goes stale on its own
            pass


class RepoLock(_HeldRecord):
    """A named exclusive lock ``locks/<name>.json``."""

    def __init__(self, store: Store, name: str, *, command: str | None = None, clock: Clock | None = None,
                 stale_after: float = 120.0, refresh_every: float = 20.0) -> None:
        super().__init__(store, lock_key(name), name, command=command, clock=clock, stale_after=stale_after,
                         refresh_every=refresh_every)
        self.name = name

    def _is_stale(self, h: Holder) -> bool:
        return is_stale(h, self.clock.now(), self.stale_after)

    def acquire(self) -> RepoLock:
        for _attempt in range(3):
            try:
                self._write(if_absent=True)
                break
            except ObjectExists:
                holder = self.read_holder()
                if holder is None:
                    continue
                if self._is_stale(holder):
                    self.store.delete(self.key)
                    continue
                raise LockedError(
                    f"the repository lock '{self.name}' is held by {holder.describe()}",
                    hint="Wait for it to finish. If that process is gone, the lock is broken automatically "
                         f"{int(self.stale_after)} s after its last heartbeat ({holder.heartbeat_at}).",
                    details={"lock": self.name, "holder": holder.to_dict()}) from None
        else:
            raise LockedError(f"could not take the repository lock '{self.name}' (contended)",
                              hint="Another process keeps taking it; try again.")
        self._start_heartbeat()
        return self

    def __enter__(self) -> RepoLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _exclusive_error(holder: Holder, stale_after: float) -> LockedError:
    return LockedError(
        f"the repository is locked for maintenance by {holder.describe()}",
        hint="Writers cannot run while maintenance that deletes (prune) holds the repository; run again when it "
             f"has finished. If that process is gone, its lock is broken {int(stale_after)} s after its last "
             f"heartbeat ({holder.heartbeat_at}).",
        details={"lock": "repository", "mode": "exclusive", "holder": holder.to_dict()})


class SharedLock(_HeldRecord):
    """The repository's shared lock, held by a process while it writes data (any number at once)."""

    mode = "shared"

    def __init__(self, store: Store, *, command: str | None = None, clock: Clock | None = None,
                 stale_after: float = 120.0, refresh_every: float = 20.0, wait: float = 0.0,
                 poll: float = 1.0) -> None:
        token = secrets.token_hex(8)
        super().__init__(store, shared_lock_key(token), "repository (shared)", command=command, clock=clock,
                         stale_after=stale_after, refresh_every=refresh_every)
        self.token = token
        self.wait = wait
        self.poll = poll

    def acquire(self) -> SharedLock:
        """Write our record, then look at the exclusive one: a live ``held`` exclusive holder makes
        us remove our record and wait (up to ``wait`` seconds) or raise LockedError naming it."""
        deadline = time.monotonic() + self.wait
        while True:
            self._write()
            ex = read_record(self.store, EXCLUSIVE_LOCK_KEY, self.clock)
            if ex is not None and is_stale(ex, self.clock.now(), self.stale_after):
                _delete_if_same(self.store, ex, self.clock)
                ex = None
            if ex is None or ex.state == "waiting":
                self._start_heartbeat()
                return self
            self.store.delete(self.key)
            if time.monotonic() >= deadline:
                raise _exclusive_error(ex, self.stale_after)
            time.sleep(min(self.poll, max(0.0, deadline - time.monotonic())))

    def __enter__(self) -> SharedLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _delete_if_same(store: Store, holder: Holder, clock: Clock) -> None:
    """Delete a stale record unless it was refreshed since we read it."""
    now = read_record(store, holder.key, clock)
    if now is not None and now.token == holder.token and now.heartbeat_at == holder.heartbeat_at:
        store.delete(holder.key)


def shared_holders(store: Store, clock: Clock, stale_after: float, *, break_stale: bool = True) -> list[Holder]:
    """The live shared holders (process locks and WAL leases); stale ones are deleted on the way."""
    live = []
    for info in list(store.list(SHARED_LOCKS_PREFIX)):
        h = read_record(store, info.key, clock)
        if h is None:
            continue
        if is_stale(h, clock.now(), stale_after):
            if break_stale:
                _delete_if_same(store, h, clock)
            continue
        live.append(h)
    return live


class ExclusiveLock(_HeldRecord):
    """The repository's exclusive lock (maintenance that deletes). Waits up to ``wait`` seconds for
    the shared holders to finish, then raises LockedError naming them (and removes its record).

    ``leases_block=False`` (prune): WAL leases do not hold it up. Safe only for maintenance that
    never deletes what a push writes or reads: prune deletes WAL older than its window (a push
    writes a fresh file) and no data or data key a push uses (docs/design/prune.md). While it
    holds the repository, a push whose lease is past its usable part still fails (exit 6)."""

    mode = "exclusive"

    def __init__(self, store: Store, *, command: str | None = None, clock: Clock | None = None,
                 stale_after: float = 120.0, refresh_every: float = 20.0, wait: float = 0.0,
                 poll: float = 1.0, sleep: Callable[[float], None] = time.sleep, leases_block: bool = True) -> None:
        super().__init__(store, EXCLUSIVE_LOCK_KEY, "repository (exclusive)", command=command, clock=clock,
                         stale_after=stale_after, refresh_every=refresh_every)
        self.leases_block = leases_block
        self.wait = wait
        self.poll = poll
        self._sleep = sleep
        self.waited: list[Holder] = []

    def acquire(self) -> ExclusiveLock:
        self.state = "waiting"
        for _attempt in range(3):
            try:
                self._write(if_absent=True)
                break
            except ObjectExists:
                holder = self.read_holder()
                if holder is None:
                    continue
                if is_stale(holder, self.clock.now(), self.stale_after):
                    _delete_if_same(self.store, holder, self.clock)
                    continue
                raise LockedError(f"the repository's exclusive lock is held by {holder.describe()}",
                                  hint="Another maintenance run holds it; wait for it to finish.",
                                  details={"lock": "repository", "mode": "exclusive", "holder": holder.to_dict()}
                                  ) from None
        else:
            raise LockedError("could not take the repository's exclusive lock (contended)", hint="Try again.")
        deadline = time.monotonic() + self.wait

        def holders(break_stale: bool = True) -> list[Holder]:
            found = shared_holders(self.store, self.clock, self.stale_after, break_stale=break_stale)
            return [h for h in found if self.leases_block or h.mode != "lease"]

        try:
            while True:
                if not holders():
                    self.state = "held"
                    self._rewrite_own()
                    live = holders()
                    if not live:
                        self._start_heartbeat()
                        return self
                    self.state = "waiting"
                    self._rewrite_own()
                else:
                    live = holders(break_stale=False)
                self.waited = live
                if time.monotonic() >= deadline:
                    names = "; ".join(h.describe() for h in live)
                    raise LockedError(
                        f"the repository is in use by {len(live)} writer(s): {names}",
                        hint="Maintenance that deletes waits for running backups and WAL archiving to stop "
                             "writing; run it again later or give it longer (--wait). A WAL lease stays live "
                             f"until {int(WAL_LEASE_TTL)} s after its last refresh.",
                        details={"lock": "repository", "mode": "exclusive",
                                 "holders": [h.to_dict() for h in live]})
                self._sleep(min(self.poll, max(0.01, deadline - time.monotonic())))
                self._rewrite_own()  # heartbeat while waiting
        except BaseException:
            self.release()
            raise

    def __enter__(self) -> ExclusiveLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class WriterLock:
    """What a writer holds: the repository's shared lock and, for backups, the per-kind named lock.

    The named lock is taken first (a second backup of the same kind fails at once naming its
    holder), then the shared lock. ``ensure_held`` checks both."""

    def __init__(self, shared: SharedLock, named: RepoLock | None = None) -> None:
        self.shared = shared
        self.named = named

    @property
    def name(self) -> str:
        return self.named.name if self.named else "repository"

    def acquire(self) -> WriterLock:
        if self.named is not None:
            self.named.acquire()
        try:
            self.shared.acquire()
        except BaseException:
            if self.named is not None:
                self.named.release()
            raise
        return self

    def ensure_held(self, *, check_store: bool = False) -> None:
        if self.named is not None:
            self.named.ensure_held(check_store=check_store)
        self.shared.ensure_held(check_store=check_store)

    def release(self) -> None:
        self.shared.release()
        if self.named is not None:
            self.named.release()

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---- the WAL lease ---------------------------------------------------------------------------------
def wal_lease_id(repo_id: str, owner: str) -> str:
    """Stable id of the lease of one cluster data directory (``owner``: host and path) in one repository."""
    return "wal-" + hashlib.sha256(f"{repo_id}\0{owner}".encode()).hexdigest()[:16]


def hold_wal_lease(store: Store, lease_id: str, owner: str, remembered: datetime | None, *,
                   clock: Clock | None = None, ttl: float = WAL_LEASE_TTL,
                   command: str = "wal push") -> datetime:
    """Make sure the WAL lease ``lease_id`` is live before a push writes; return the refresh time
    to remember (the caller keeps it beside the data directory and passes it back next time).

    * ``remembered`` younger than ``WAL_LEASE_REFRESH`` × ``ttl``: returned as is, no store access.
    * Otherwise the exclusive record is read. If a prune waits or holds the repository, the lease
      is not extended: a ``remembered`` younger than ``WAL_LEASE_USABLE`` × ``ttl`` is still
      used (the prune waits the whole TTL); an older one raises LockedError naming the holder
      (PostgreSQL retries the push later).
    * Else the lease record is written, then the exclusive record read again; a prune that took
      the repository in between wins (as above).

    A kill -9 between the steps leaves a lease record, live for ``ttl`` seconds.
    """
    clock = clock or SystemClock()
    now = clock.now()
    age = (now - remembered).total_seconds() if remembered else None
    if age is not None and 0 <= age < ttl * WAL_LEASE_REFRESH:
        return remembered  # type: ignore[return-value]
    usable = age is not None and 0 <= age < ttl * WAL_LEASE_USABLE
    key = shared_lock_key(lease_id)

    def blocked(ex: Holder) -> datetime:
        if usable:
            assert remembered is not None
            return remembered
        raise _exclusive_error(ex, ttl)

    ex = read_record(store, EXCLUSIVE_LOCK_KEY, clock)
    if ex is not None and is_stale(ex, now, 120.0):
        _delete_if_same(store, ex, clock)
        ex = None
    if ex is not None:
        return blocked(ex)
    body = {"host": socket.gethostname(), "pid": os.getpid(), "user": getpass.getuser(), "command": command,
            "owner": owner[:300], "started_at": utc_iso(now), "heartbeat_at": utc_iso(now), "token": lease_id,
            "mode": "lease", "ttl": ttl}
    store.put(key, json.dumps(body).encode())
    ex = read_record(store, EXCLUSIVE_LOCK_KEY, clock)
    if ex is not None and ex.state == "held" and not is_stale(ex, clock.now(), 120.0):
        if not usable:
            store.delete(key)
        return blocked(ex)
    return now


def release_wal_lease(store: Store, lease_id: str) -> None:
    """Remove a WAL lease (a cluster that stops archiving to this repository)."""
    store.delete(shared_lock_key(lease_id))


__all__ = ["ExclusiveLock", "Holder", "RepoLock", "SharedLock", "WriterLock", "hold_wal_lease", "shared_holders"]
