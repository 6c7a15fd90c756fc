"""Find PostgreSQL's client and server programs."""
from __future__ import annotations

import shutil
from pathlib import Path

from swarm.errors import ConfigError

PREFERRED_MAJOR = 15


def find_bindir(explicit: str | None = None, *, need: str = "pg_dump") -> Path:
    """The directory holding ``need``: ``explicit``, else /usr/lib/postgresql/<15 or newest>/bin, else PATH."""
    if explicit:
        p = Path(explicit)
        if (p / need).exists():
            return p
        raise ConfigError(f"{need} not found in {p}", hint="Fix SWARM_PG_BINDIR / [postgres] bindir.")
    root = Path("/usr/lib/postgresql")
    candidates = []
    if root.is_dir():
        for d in root.iterdir():
            if d.name.isdigit() and (d / "bin" / need).exists():
                candidates.append((int(d.name) == PREFERRED_MAJOR, int(d.name), d / "bin"))
    if candidates:
        return sorted(candidates)[-1][2]
    found = shutil.which(need)
    if found:
        return Path(found).resolve().parent
    raise ConfigError(f"PostgreSQL program {need} not found",
                      hint="Install the server binaries: `apt-get install -y postgresql-15` (or set SWARM_PG_BINDIR).")


def tool(name: str, explicit: str | None = None) -> str:
    return str(find_bindir(explicit, need=name) / name)
