"""Object storage: policy, replication, point-in-time restore, undelete, versions, objects backups."""
from __future__ import annotations

from typing import Any

from rich.markup import escape

from swarm.ui import render

LIST_LIMIT = 50  # rows a human table shows; the rest is counted, never silently dropped


def _more(total: int, shown: int, in_json: int) -> None:
    """Say how many rows a table left out (and where to get them)."""
    if total > shown:
        where = "all of them" if in_json >= total else f"the first {in_json}"
        render.out.print(f"... and {total - shown} more (`--json` lists {where})")


def _print_failed(d: dict[str, Any]) -> None:
    if d.get("failed"):
        render.err.print(f"[bold red]{d['failed_count']} key(s) failed[/] (re-run to retry them):", markup=True)
        for f in d["failed"]:
            render.err.print(f"  {f['key']}" + (f" (version {f['version_id']})" if f.get("version_id") else "")
                             + f": {f['message']}", markup=False)  # keys may hold [brackets]


def policy(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    render.out.print(f"bucket {d['bucket']['bucket']} on {d['bucket']['endpoint']} ({d['mode']})", markup=False)
    render.table(None, ["rule", "status", "difference / what to do"],
                 [[r["rule"], r["status"], r.get("difference", "") + (f" → {r['instead']}" if r.get("instead")
                                                                      else "")] for r in d["rules"]])


def replicated(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    render.out.print(f"replicated {d['source']['bucket']} → {d['dr']['bucket']}"
                     f" ({'server-side copy' if d['server_side'] else 'streamed'}): "
                     f"{d['versions_copied']} version(s), {d['delete_markers_copied']} delete marker(s), "
                     f"{render.human_bytes(d['bytes_copied'])} in {d['elapsed_s']:.1f} s; "
                     f"{d['keys_examined']} keys examined", markup=False)
    _print_failed(d)


def replication_check(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    in_sync = not d["difference_count"]
    state = "[bold green]in sync[/]" if in_sync else f"[bold red]{d['difference_count']} difference(s)[/]"
    render.out.print(f"{escape(d['source']['bucket'])} vs DR {escape(d['dr']['bucket'])}: {state}; "
                     f"lag {d['lag_s']:.0f} s")
    render.kv(sorted(d["counts"].items()))
    if d["differences"]:
        shown = d["differences"][:LIST_LIMIT]
        render.table(None, ["key", "difference", "detail"], [[x["key"], x["kind"], x["detail"]] for x in shown])
        _more(d["difference_count"], len(shown), len(d["differences"]))


def restored_at(d: dict[str, Any], *, prefix: str, source: str, dry_run: bool, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    p = d["plan"]
    verb = "would" if dry_run else "did"
    render.out.print(f"{d['target']['bucket']}/{prefix} as of {d['at']} (history from {source}): "
                     f"{p['keys_examined']} keys, {p['unchanged']} unchanged; {verb} copy {p['copy']} "
                     f"({render.human_bytes(p['bytes_to_copy'])}), {verb} delete {p['delete']}", markup=False)
    if d["actions"]:
        shown = d["actions"][:LIST_LIMIT]
        render.table(None, ["action", "key", "version"],
                     [[a["action"], a["key"], a.get("version_id", "")] for a in shown])
        _more(int(p["copy"]) + int(p["delete"]), len(shown), len(d["actions"]))
    for a in d["archived"]:
        render.err.print(f"archived: {a['key']} version {a['version_id']} is in {a['storage_class']}; "
                         "restore (thaw) it first, then re-run", markup=False)
    _print_failed(d)


def undeleted(d: dict[str, Any], *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    render.out.print(f"{'would undelete' if dry_run else 'undeleted'} {d['undeleted']} key(s) in "
                     f"{d['bucket']['bucket']}", markup=False)
    for k in d["keys"][:LIST_LIMIT]:
        render.out.print(f"  {k['key']} → version {k['restored_version_id']}", markup=False)
    _more(d["undeleted"], min(LIST_LIMIT, len(d["keys"])), len(d["keys"]))
    _print_failed(d)


def versions(d: dict[str, Any], key: str, *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    render.table(f"{d['bucket']}/{key}", ["version", "last modified", "latest", "kind", "size", "class"],
                 [[v["version_id"], v["last_modified"], "*" if v["is_latest"] else "",
                   "delete marker" if v["delete_marker"] else "object", v.get("size"),
                   v.get("storage_class")] for v in d["versions"]])


def backed_up(res: Any, *, copy_data: bool, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    from swarm.services.repository.catalog import backup_size

    render.out.print(f"[bold green]backup {d['id']}[/]: {d['keys']} keys of {escape(str(d['bucket']))} as of "
                     f"{d['at']}")
    render.kv([("size", render.sizes(backup_size(res.manifest), d["stored_size"]))])  # as `backups list`
    if copy_data:
        render.out.print(f"stored {d['versions_stored']} version(s) ({render.human_bytes(d['bytes_stored'])}), "
                         f"referenced {d['versions_referenced']} already stored")


def restored_backup(d: dict[str, Any], backup_id: str, *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    c = d["counts"]
    render.out.print(f"{'dry run: ' if dry_run else ''}{backup_id} → {d['target']['bucket']}: "
                     f"{c.get('keys', 0)} keys, {c.get('unchanged', 0)} unchanged, "
                     f"{c.get('would_restore', 0) + c.get('copied', 0) + c.get('uploaded_from_backup', 0)}"
                     " restored" + (" (planned)" if dry_run else ""), markup=False)
    _print_failed(d)
