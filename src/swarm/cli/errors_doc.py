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
    lines += ["", NAGIOS_SECTION.rstrip("\n"), "", "| `--nagios` exit | level | when |", "|---|---|---|"]
    lines += [f"| `{code}` | {level} | {when} |" for code, level, when in NAGIOS_ROWS]
    return "\n".join(lines) + "\n"


NAGIOS_SECTION = """\
## `swarm admin status`: normal codes and `--nagios`

Without `--nagios`, `status` keeps the codes above: 0 when every check is OK, 1 (FAILED) when
any check is WARNING, CRITICAL or UNKNOWN, and the family codes for errors (3, 4, 7, ...).
With `--nagios` it prints one line (`SWARM <LEVEL> - <what is wrong> | <perfdata>`) and follows
the Nagios plugin guidelines instead; every error, a usage error included, is UNKNOWN:

"""

NAGIOS_ROWS = [
    ("0", "OK", "every check is OK"),
    ("1", "WARNING", "the worst check is WARNING (a backup older than 1.5 intervals, a scheduled kind never "
                     "backed up, a failed job, the DR bucket behind)"),
    ("2", "CRITICAL", "the worst check is CRITICAL (a backup older than 2.5 intervals, WAL archiving failing "
                      "since its last success, a hole in the WAL archive)"),
    ("3", "UNKNOWN", "a check could not be made (the server did not answer), or any error: usage (instead of 2), "
                     "configuration (3), key (4), repository unreachable (7), a bug (70)"),
]



if __name__ == "__main__":
    import sys

    sys.stdout.write(exit_codes_doc())
