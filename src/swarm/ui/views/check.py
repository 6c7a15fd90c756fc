"""``check stack``: whether the database, the bucket and the state directory agree, and where not.

Every finding of a failing category is printed (each missing or mismatched artefact key is
named); the categories that do not fail the check (unrecorded objects, unverified
checksums) show their first few, ``--json`` lists them all.
"""
from __future__ import annotations

from typing import Any

from swarm.ui import render

LISTED = 20  # findings shown per non-failing category in human output
LABELS = {
    "missing_object": "artefacts whose object is missing",
    "size_mismatch": "artefacts whose object has another size",
    "checksum_mismatch": "artefacts whose object has another SHA-256 (same size)",
    "orphan_object": "objects under pipeline_runs/ of no run",
    "orphan_batch_dir": "batch run dirs naming no run",
    "orphan_cron_job": "cron jobs naming no pipeline",
    "state_unreadable": "state files that cannot be read",
    "unrecorded_object": "objects of existing runs that no run_artefacts row records (not a failure)",
    "unverified": "artefacts of the right size whose checksum was not read (not a failure)",
}


def finding_line(f: dict[str, Any]) -> str:
    c, s = f["category"], f["subject"]
    if c == "missing_object":
        return f"{s} (run {f.get('run_id')}, {f.get('expected_size')} bytes recorded)"
    if c == "size_mismatch":
        return f"{s} (run {f.get('run_id')}): {f.get('expected_size')} bytes recorded, {f.get('actual_size')} found"
    if c == "checksum_mismatch":
        return (f"{s} (run {f.get('run_id')}): SHA-256 {f.get('expected_sha256')} recorded, "
                f"{f.get('actual_sha256')} found")
    if c in ("orphan_object", "unrecorded_object"):
        return f"{s} ({f.get('actual_size')} bytes): {f.get('detail', '')}"
    if c == "orphan_batch_dir":
        return f"batch/{s}/: run {s} does not exist"
    if c == "orphan_cron_job":
        return f"job {s}: pipeline {f.get('pipeline')!r} does not exist"
    return f"{s}: {f.get('detail', '')}"


def stack_result(res: Any, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    t, c = d["target"], d["checked"]
    verdict = "[bold green]OK[/]: the database, the bucket and the state directory agree" if d["ok"] else \
        "[bold red]FAILED[/]: the stores disagree"
    render.out.print(verdict)
    read = (f"{d['objects_read']} read, {render.human_bytes(d['bytes_read'])}, SHA-256 compared"
            if d["checksums"] == "read" else "sizes only, checksums not read")
    render.kv([("database", t["database"]),
               ("bucket", f"{t['bucket']['bucket']} on {t['bucket']['endpoint']}"),
               ("state dir", t["state_dir"]),
               ("checked", f"{c['runs']} runs, {c['pipelines']} pipelines; {c['artefacts']} artefacts "
                           f"({render.human_bytes(c['artefact_bytes'])}; {read}), {c['artefacts_agreeing']} "
                           f"agreeing; {c['objects']} objects under pipeline_runs/ "
                           f"({render.human_bytes(c['object_bytes'])}); {c['batch_dirs']} batch run dirs; "
                           f"{c['cron_jobs']} cron jobs; {d['seconds']:.1f} s")])
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for f in d["findings"]:
        by_cat.setdefault(f["category"], []).append(f)
    failing_first = [k for k in LABELS if k in by_cat]
    for cat in failing_first:
        fs = by_cat[cat]
        amount = d["summary"][cat]
        size = f", {render.human_bytes(amount['bytes'])}" if "bytes" in amount else ""
        render.out.print(f"{LABELS[cat]}: {amount['count']}{size}", markup=False)
        shown = fs if cat not in ("unrecorded_object", "unverified") else fs[:LISTED]
        for f in shown:
            render.out.print(f"  {finding_line(f)}", markup=False)
        if len(shown) < len(fs):
            render.out.print(f"  ... and {len(fs) - len(shown)} more (--json lists them all)", markup=False)
    for hint in hints(d):
        render.err.print(f"hint: {hint}", markup=False, highlight=False)


def hints(d: dict[str, Any]) -> list[str]:
    """What to do next, by what disagrees."""
    s = d["summary"]
    out = []
    if s["missing_object"]["count"] or s["size_mismatch"]["count"] or s["checksum_mismatch"]["count"]:
        out.append("artefacts the database records are missing or changed in the bucket: restore them from the "
                   "bucket's versions or the DR bucket (`swarm admin objects restore --prefix KEY --at TIME`), "
                   "or restore the whole stack to one point in time.")
    if s["orphan_object"]["count"]:
        out.append("objects under pipeline_runs/ belong to runs the database does not have: the bucket is newer "
                   "than the database (or runs were deleted without their objects).")
    if s["orphan_batch_dir"]["count"] or s["orphan_cron_job"]["count"] or s["state_unreadable"]["count"]:
        out.append("the state directory names runs or pipelines the database does not have (or cannot be read): "
                   "it is newer than the database, or was restored from another point in time.")
    return out
