"""``secrets check``: each secret and its state, then every file where a secret was found.

Values never reach this module: the result holds names, sources, lengths, places and shape
kinds only.
"""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def check_result(res: Any, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    verdict = ("[bold green]OK[/]: every secret is present, and none was found where it must not be" if d["ok"]
               else "[bold red]FAILED[/]: a secret is missing or weak, or was found where it must not be")
    render.out.print(verdict)
    rows = []
    for s in d["secrets"]:
        facts = s["facts"]
        extra = ""
        if "versions" in facts:
            extra = f"{facts['versions']} version(s), {'AWSPREVIOUS kept' if facts['previous'] else 'no AWSPREVIOUS'}"
        rows.append((s["name"], s["source"], s["state"].upper() if s["state"] != "ok" else "ok",
                     s["problem"] or (f"{s['length']} bytes" + (f"; {extra}" if extra else ""))))
    if rows:
        render.table(None, ["secret", "source", "state", "detail"], rows)
    if d["not_used"]:
        render.out.print(f"not used (set to \"\" in [secrets]): {', '.join(d['not_used'])}", markup=False)
    for p in d["scanned"]:
        render.out.print(f"scanned {p['place']} {p['where']}: {p['files']} file(s), {render.human_bytes(p['bytes'])}",
                         markup=False)
    for p in d["not_scanned"]:
        render.out.print(f"not scanned: {p['place']}: {p['reason']}", markup=False)
    if d["findings"]:
        render.out.print(f"found where they must not be: {len(d['findings'])} file(s)", markup=False)
        for f in d["findings"]:
            what = [f"the value of {n}" for n in f["secrets"]] + [f"a {k} shape" for k in f["shapes"]]
            render.out.print(f"  {f['place']} {f['where']}: {f['path']}: {', '.join(what)}", markup=False)
    for s in d["secrets"]:
        for w in s["warnings"]:
            render.err.print(f"warning: {s['name']}: {w}", markup=False, highlight=False)
    for w in d["warnings"]:
        render.err.print(f"warning: {w}", markup=False, highlight=False)
    if not d["ok"]:
        render.err.print("hint: set or fix each failing secret at its source; remove each value found from the file "
                         "named (and rotate that secret: a copy left in a backup or an export stays readable); see "
                         "docs/runbooks.md", markup=False, highlight=False)
