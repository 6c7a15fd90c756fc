"""Compare the row counts a manifest recorded with what a restore produced."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableCheck:
    table: str
    expected: int | None  # None: the table is not in the manifest
    restored: int | None  # None: the table is missing after restore

    @property
    def ok(self) -> bool:
        return self.expected == self.restored


@dataclass(frozen=True)
class RowCountComparison:
    tables: tuple[TableCheck, ...]

    @property
    def validated(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def mismatches(self) -> tuple[TableCheck, ...]:
        return tuple(t for t in self.tables if not t.ok)

    def to_dict(self) -> dict[str, dict[str, int | None]]:
        return {t.table: {"expected": t.expected, "restored": t.restored} for t in self.tables}


def compare_row_counts(expected: dict[str, int], restored: dict[str, int]) -> RowCountComparison:
    """Every table of either side, sorted by name; a table on one side only is a mismatch."""
    names = sorted(set(expected) | set(restored))
    return RowCountComparison(tuple(TableCheck(n, expected.get(n), restored.get(n)) for n in names))
