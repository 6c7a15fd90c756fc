"""State-directory snapshots: ``backup state`` and ``restore state`` (and its dry run)."""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def _listed(items: list[dict[str, Any]], key: str) -> list[str]:
    return [f"{i['path']}: {i[key]}" for i in items]


def backup_state(res: Any, repo_url: str, *, as_json: bool) -> None:
    d = res.to_dict()
    if not d["complete"]:
        render.err.print("the snapshot is incomplete: the files listed as unreadable or inconsistent are not in it "
                         "(or not as one consistent read); fix their permissions or quiesce the writer and run it "
                         "again", markup=False, highlight=False)
    if as_json:
        render.emit_json(d)
        return
    verdict = "[bold green]complete[/]" if d["complete"] else "[bold red]INCOMPLETE[/]"
    render.out.print(f"[bold green]state snapshot {d['id']}[/] of {render.escape(d['state_dir'])}: {verdict}")
    cache = d["cache"]
    pairs: list[tuple[str, Any]] = [
        ("files", f"{d['files']} ({d['dirs']} directories, {d['symlinks']} symlinks, {d['hardlinks']} hard links)"),
        ("size", render.sizes(d["size"], d["stored_size"])),
        ("new", f"{d['new_blocks']} blocks, {render.human_bytes(d['new_bytes'])} -> "
                f"{render.human_bytes(d['stored_new_bytes'])} stored"),
        ("reused", f"{d['reused_blocks']} blocks, {render.human_bytes(d['reused_bytes'])}"
                   + (f" (from {d['parent']})" if d["parent"] else "")),
        ("change cache", f"{cache['reused']} files unchanged (not read), {cache['read']} read, "
                         f"{cache['rehashed']} re-hashed"),
    ]
    if cache.get("mismatched"):
        pairs.append(("cache mismatches", [f"{p}: changed although its stat did not" for p in cache["mismatched"]]))
    if d["excluded"]:
        pairs.append(("excluded", _listed(d["excluded"], "reason")))
    if d["skipped"]:
        pairs.append(("skipped", _listed(d["skipped"], "type")))
    if d["unreadable"]:
        pairs.append(("unreadable", _listed(d["unreadable"], "error")))
    if d["inconsistent"]:
        pairs.append(("inconsistent", _listed(d["inconsistent"], "reason")))
    pairs += [("time", f"{d['seconds']:.1f} s"), ("repository", repo_url)]
    render.kv(pairs)


def restore_plan(plan: Any, *, as_json: bool) -> None:
    d = plan.to_dict()
    if as_json:
        render.emit_json({"dry_run": True, "plan": d})
        return
    render.out.print(f"dry run; would restore {d['backup_id']} into {d['target']}"
                     + (" (replacing what is there)" if d["replaces_existing"] else ""), markup=False)
    render.kv([("files", d["files"]), ("directories", d["dirs"]), ("symlinks", d["symlinks"]),
               ("hard links", d["hardlinks"]), ("size", render.human_bytes(d["size"]))])
    for e in d["entries"]:
        extra = (f" -> {e['target']}" if e["type"] == "symlink" else
                 f" (hard link to {e['hardlink_to']})" if e.get("hardlink_to") else
                 f" {render.human_bytes(e['size'])}" if e["type"] == "file" else "/")
        render.out.print(f"  {e['mode']} {e['path']}{extra}", markup=False)


def restore_state(res: Any, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    if res.swept:
        render.out.print(f"removed leftovers of interrupted restores: {', '.join(res.swept)}", markup=False)
    render.out.print(f"[bold green]restored[/] state snapshot {d['backup_id']} into {render.escape(d['target'])} "
                     f"({d['files']} files, {render.human_bytes(d['bytes'])}; {d['checksums_verified']} checksums "
                     f"verified) in {d['seconds']:.1f} s")
    if not d["complete_snapshot"]:
        render.out.print("note: this snapshot was incomplete when taken (see `swarm admin backups show "
                         f"{d['backup_id']}`)", markup=False)
    render.out.print(f"Point swarm at it:  {d['point_swarm_at_it']}", markup=False)
