"""Named repository locks with heartbeat and stale detection.

A lock is the object ``locks/<name>.json``, created with a conditional put (fails if it
exists). The holder rewrites it every ``refresh_every`` seconds. Another process may
break it when the heartbeat is older than ``stale_after``, or when the holder ran on the
same host and its pid is gone. If a refresh finds the lock gone or owned by someone
else, the lock is *lost*: ``ensure_held`` raises, so the work stops before it commits.

Crash behaviour: a killed holder leaves its lock object; the next writer breaks it once
it is stale (``stale_after``) or at once on the same host (dead pid).
"""
from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from swarm.clock import Clock, SystemClock, parse_iso, utc_iso
from swarm.errors import LockedError
from swarm.repo.format import lock_key
from swarm.storage.base import ObjectExists, ObjectNotFound, Store


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    user: str
    command: str
    started_at: str
    heartbeat_at: str
    token: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (user {self.user}, `{self.command}`, since {self.started_at})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RepoLock:
    def __init__(self, store: Store, name: str, *, command: str | None = None, clock: Clock | None = None,
                 stale_after: float = 120.0, refresh_every: float = 20.0) -> None:
        self.store = store
        self.name = name
        self.key = lock_key(name)
        self.clock = clock or SystemClock()
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.command = command or " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        self.token = secrets.token_hex(8)
        self._started = utc_iso(self.clock.now())
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "user": getpass.getuser(),
                           "command": self.command[:200], "started_at": self._started,
                           "heartbeat_at": utc_iso(self.clock.now()), "token": self.token}).encode()

    def read_holder(self) -> Holder | None:
        try:
            d: dict[str, Any] = json.loads(self.store.get(self.key))
            return Holder(**{k: d[k] for k in Holder.__dataclass_fields__})
        except ObjectNotFound:
            return None
        except (ValueError, KeyError, TypeError):
            # An unreadable lock is treated as stale: its writer crashed mid-put on a store
            # without atomic puts. It still blocks until stale_after from its mtime.
            info = self.store.stat(self.key)
            ts = utc_iso(info.modified) if info and info.modified else utc_iso(self.clock.now())
            return Holder("?", -1, "?", "?", ts, ts, "?")

    def _is_stale(self, h: Holder) -> bool:
        age = (self.clock.now() - parse_iso(h.heartbeat_at)).total_seconds()
        if age > self.stale_after:
            return True
        return h.host == socket.gethostname() and h.pid > 0 and not _pid_alive(h.pid)

    def acquire(self) -> RepoLock:
        for _attempt in range(3):
            try:
                self.store.put(self.key, self._body(), if_absent=True)
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
                    details={"lock": self.name, "holder": holder.__dict__}) from None
        else:
            raise LockedError(f"could not take the repository lock '{self.name}' (contended)",
                              hint="Another process keeps taking it; try again.")
        self._thread = threading.Thread(target=self._heartbeat, name=f"lock-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                holder = self.read_holder()
                if holder is None or holder.token != self.token:
                    self._lost = "the lock object was removed or taken over by another process"
                    return
                self.store.put(self.key, self._body())
            except Exception as exc:
                if (self.clock.now() - parse_iso(self._started)) > timedelta(seconds=self.stale_after):
                    self._lost = f"the lock could not be refreshed ({exc})"

    def ensure_held(self) -> None:
        """Raise ``LockedError`` if the lock was lost; call before committing work."""
        if self._lost:
            raise LockedError(f"lost the repository lock '{self.name}': {self._lost}",
                              hint="Another process may have broken it as stale; run the operation again.")

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        holder = self.read_holder()
        if holder is not None and holder.token == self.token:
            self.store.delete(self.key)

    def __enter__(self) -> RepoLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
