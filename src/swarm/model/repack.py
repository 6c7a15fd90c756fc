"""Which packs prune rewrites: the unused-space budget (``--max-unused``), a pure decision.

A pack's *unused* bytes are its stored bytes minus its header and the frames some kept backup
references. Only packs of backups that are no longer kept are candidates: a kept backup's own
packs hold only blocks it references (its tree was written from them) and its manifest lists
them with their SHA-256, so they are never rewritten.

The rule is restic's: the budget is either a share of the packs' bytes (``10%``: after the
repack, unused bytes are at most 10% of the bytes the packs hold; ``0%``: no unused byte is
left) or an absolute size (``50MB``). While the unused bytes exceed the budget, the pack with
the most unused bytes is rewritten next (ties: the larger unused share, then the name), so the
fewest bytes are rewritten per byte freed. Rewriting a pack costs its live bytes; it frees its
unused bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from swarm.errors import ConfigError

_SIZE_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
               "T": 10**12, "TB": 10**12, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


@dataclass(frozen=True)
class Budget:
    """``percent`` (0..100) of the packs' bytes, or ``bytes``: exactly one is set."""

    percent: float | None = None
    bytes: int | None = None

    def limit(self, total: int, unused: int) -> int:
        """Unused bytes allowed when the packs hold ``total`` bytes of which ``unused`` are unused.
        A share is of the bytes that remain after the repack: used / (1 - p) * p (restic's rule),
        so ``10%`` leaves at most one unused byte per nine used ones."""
        if self.bytes is not None:
            return self.bytes
        p = self.percent or 0.0
        if p >= 100:
            return total
        return int((total - unused) * p / (100 - p))

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.bytes} bytes"


def parse_budget(text: str) -> Budget:
    """``"10%"``, ``"0%"``, ``"12.5%"``, ``"50MB"``, ``"1GiB"``, ``"0"``; ConfigError naming ``--max-unused``."""
    t = str(text).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", t)
    if m:
        p = float(m.group(1))
        if p > 100:
            raise ConfigError(f"--max-unused {text!r} is more than 100%",
                              hint="Give a share like 10% or a size like 50MB.")
        return Budget(percent=p)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", t)
    if m and m.group(2).upper() in _SIZE_UNITS:
        return Budget(bytes=int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]))
    raise ConfigError(f"--max-unused {text!r} is neither a share nor a size",
                      hint="Give a share of the packs' bytes (10%, 0%) or a size (50MB, 1GiB).")


@dataclass(frozen=True)
class PackUse:
    """One pack: ``key`` names it, ``size`` its stored bytes, ``live`` the bytes of the frames kept
    backups reference (header excluded); ``candidate``: prune may rewrite it."""

    key: str
    size: int
    live: int
    candidate: bool = True

    @property
    def unused(self) -> int:
        return max(0, self.size - self.live - 8)


@dataclass(frozen=True)
class RepackChoice:
    chosen: tuple[PackUse, ...]
    total: int  # bytes of every pack considered
    unused_before: int
    unused_after: int
    limit: int

    @property
    def rewritten(self) -> int:
        """Bytes written anew (the repack's cost)."""
        return sum(p.live + 8 for p in self.chosen)

    @property
    def freed(self) -> int:
        return sum(p.unused for p in self.chosen)


def choose(packs: list[PackUse], budget: Budget) -> RepackChoice:
    """The packs to rewrite (pure, deterministic): greedily by unused bytes until the unused bytes
    left are within ``budget``'s limit, or no candidate with unused bytes is left."""
    total = sum(p.size for p in packs)
    unused = sum(p.unused for p in packs)
    limit = budget.limit(total, unused)
    order = sorted((p for p in packs if p.candidate and p.unused > 0),
                   key=lambda p: (-p.unused, -p.unused / max(1, p.size), p.key))
    chosen = []
    left = unused
    for p in order:
        if left <= limit:
            break
        chosen.append(p)
        left -= p.unused
    return RepackChoice(tuple(chosen), total, unused, left, limit)
