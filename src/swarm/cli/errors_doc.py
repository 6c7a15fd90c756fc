"""docs/exit-codes.md, generated from the error catalogue: ``python -m swarm.cli.errors_doc > docs/exit-codes.md``.

It lives in ``cli`` (the top layer) because it imports every module that defines errors, so the
catalogue is complete; ``tests/cli/test_json_flag.py`` checks the checked-in file is current.
"""
from __future__ import annotations

import importlib

from swarm.errors import MEANINGS, RULES, ExitCode, catalogue

# modules that define error classes besides swarm.errors
ERROR_MODULES = ("swarm.storage.base", "swarm.sources.objects.bucket")


def exit_codes_doc() -> str:
    """docs/exit-codes.md, from the code."""
    lines = ["# Exit codes and error codes of `swarm`", "",
             "Generated from `src/swarm/errors.py` by `python -m swarm.errors > docs/exit-codes.md`; a test",
             "checks that this file is current. `src/swarm/cli/main.py` is the only place that turns an error",
             "into an exit code. With `--json`, an error is also printed to stdout as",
             '`{"error": <code>, "message": ..., "hint": ..., "exit_code": n}` (and `details` where there',
             "are facts to act on); the human message and its hint always go to stderr.", "",
             "## Exit codes", "", "| code | name | meaning | examples |", "|---|---|---|---|"]
    for ec in ExitCode:
        meaning, examples = MEANINGS[ec]
        lines.append(f"| {int(ec)} | {ec.name} | {meaning} | {examples} |")
    lines += ["", RULES, "## Error codes", "",
              "The `error` field of a `--json` error. Each code belongs to one exit code; a more specific",
              "code is a case of the general one above it in the same family.", "",
              "| error | exit | meaning |", "|---|---|---|"]
    for name in ERROR_MODULES:
        importlib.import_module(name)
    for c in catalogue():
        doc = " ".join((c.__doc__ or "").split("\n\n")[0].split())
        lines.append(f"| `{c.code}` | {int(c.exit_code)} | {doc} |")
    return "\n".join(lines) + "\n"



if __name__ == "__main__":
    import sys

    sys.stdout.write(exit_codes_doc())
