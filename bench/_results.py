"""Write one benchmark's section into bench/RESULTS.md without touching the others.

Each benchmark owns the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.
A missing section is appended; the rest of the file is kept byte for byte.
"""
from __future__ import annotations

import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = ("# Benchmark results\n\nEvery figure below was measured by the script named in its section, in one run, "
          "on the machine described there. Ratios compare swarm with the baseline measured in the same run.\n")


def machine_line() -> str:
    """One line describing where the figures were taken."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=False).stdout.strip()
    except OSError:
        rev = "?"
    return (f"_Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit `{rev or '?'}` on "
            f"{platform.system()} {platform.machine()}, {cpu}, Python {platform.python_version()}._")


def update_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of bench/RESULTS.md with ``markdown``."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f"<!-- {name}:begin -->\n{markdown.rstrip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
