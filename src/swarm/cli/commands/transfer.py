"""``swarm admin export`` and ``swarm admin import``: move one run between deployments.

Exit status: 0 done; 3 configuration (no database URL / bucket, output directory missing);
4 the export signing key is unreadable or not 0600; 5 the archive is damaged (checksum
mismatch, truncated, not tar.gz) or its signature does not hold (never overridable);
7 PostgreSQL or S3 unreachable; 8 refused (unsigned archive or untrusted signer without
--allow-unsigned; hostile archive: unsafe names, links, devices, bombs, limits, rows of
another run; schema version mismatch; run already exists without --replace / --new-id;
output exists); 9 no such run / archive; 10 the database failed mid-import (rolled back).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.ui import render

PII_BANNER = ("WARNING: this export is NOT scrubbed and contains PII from production (emails, phone numbers, "
              "card numbers, Aadhaar and SSN values). Handle it as production data; use --scrub for dev.")


def register(admin: typer.Typer) -> None:
    """Add ``export`` and ``import`` to the ``admin`` group."""

    @admin.command("export")
    def export_cmd(
        ctx: typer.Context,
        run_id: str = typer.Option(..., "--run-id", help="The run to export."),
        output: Path = typer.Option(..., "--output", "-o", help="Archive to write (.tar.gz), atomically."),
        scrub: bool = typer.Option(False, "--scrub", help="Redact PII from rows, events, conversations and "
                                                          "reports (models are kept as they are)."),
        include_unscrubbed: bool = typer.Option(False, "--include-unscrubbed",
                                                help="With --scrub: also include binary artefacts that cannot be "
                                                     "scrubbed (PDFs, images), marked in the manifest."),
        force: bool = typer.Option(False, "--force", help="Replace --output if it exists."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Export one run's rows and artefacts (pipeline_runs/<run_id>/) into one archive, signed with
        this deployment's export signing key ($SWARM_HOME/keys/export-signing.key, created on first
        use; importers trust it with `swarm admin keys export-public` here and `keys trust` there)."""
        from swarm.services.context import primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.transfer.export import export_run
        from swarm.services.transfer.trust import load_signing_key

        s = settings(ctx)
        db_url = s.require("db_url", "the database (SWARM_DB_URL)")
        bucket = open_bucket(primary_config(s))
        key, created = load_signing_key(s.home)
        if created:
            render.err.print(f"created this deployment's export signing key {key.path} ({key.fingerprint}); "
                             "importers must trust it: `swarm admin keys export-public FILE` here, "
                             "`swarm admin keys trust FILE` there", markup=False)
        res = export_run(db_url, bucket, run_id, output, scrub=scrub, signing_key=key,
                         include_unscrubbed=include_unscrubbed, force=force)
        d = res.to_dict()
        if not res.scrubbed:
            render.err.print(f"[bold red]{PII_BANNER}[/]", markup=True)
        for w in res.warnings if res.scrubbed else []:
            render.err.print(f"[yellow]warning:[/] {w}", markup=True)
        if as_json:
            render.emit_json(d)
            return
        render.kv([("run", res.run_id), ("archive", f"{res.output} ({render.human_bytes(res.bytes)})"),
                   ("sha256", res.sha256), ("signed by", res.signer),
                   ("rows", ", ".join(f"{t} {n}" for t, n in res.rows.items())),
                   ("objects", f"{res.objects} ({render.human_bytes(res.object_bytes)})"),
                   ("scrubbed", "yes: " + _summary(res.scrub_report) if res.scrubbed else "NO - contains PII")])
        if res.left_out:
            render.out.print(f"left out (cannot be scrubbed; --include-unscrubbed to keep): {', '.join(res.left_out)}")
        for d in res.secrets_left_out:
            render.out.print(f"left out (holds a secret): {d['path']}: {d['reason']}", markup=False)
        for r in res.secrets_redacted:
            render.out.print(f"secrets redacted in {r['rows']} row(s) of {r['member']}: {', '.join(r['kinds'])}",
                             markup=False)

    @admin.command("import")
    def import_cmd(
        ctx: typer.Context,
        archive: Path = typer.Argument(..., help="An archive written by `swarm admin export`."),
        replace: bool = typer.Option(False, "--replace", help="If the run exists, delete it and import again."),
        new_id: bool = typer.Option(False, "--new-id", help="Import under a fresh run id (rewrites references and "
                                                            "object keys)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check everything; write nothing."),
        allow_unsigned: bool = typer.Option(False, "--allow-unsigned",
                                            help="Import an unsigned archive, or one signed by a key this "
                                                 "deployment does not trust, with a loud warning: nothing then "
                                                 "vouches for its origin, its scrubbed flag or its contents. A "
                                                 "broken signature is refused regardless."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Import an exported run into this deployment (database and artefact bucket).

        The archive must be signed by a trusted exporter (`swarm admin keys
        trust FILE`; this deployment's own key is always trusted) and carry
        only rows of the run it declares."""
        from swarm.services.context import primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.transfer.imports import import_run
        from swarm.services.transfer.trust import load_trust

        if replace and new_id:
            raise typer.BadParameter("use --replace or --new-id, not both", param_hint="--replace/--new-id")
        s = settings(ctx)
        db_url = s.require("db_url", "the database (SWARM_DB_URL)")
        bucket = open_bucket(primary_config(s))
        res = import_run(archive, db_url, bucket, trust=load_trust(s.home), allow_unsigned=allow_unsigned,
                         replace=replace, new_id=new_id, dry_run=dry_run)
        d = res.to_dict()
        for w in res.plan.warnings:
            render.err.print(f"WARNING: {w}", style="bold red", markup=False)
        if res.plan.contains_pii:
            render.err.print("[bold red]WARNING: this archive is marked contains_pii: it holds unscrubbed "
                             "production data.[/]", markup=True)
        if as_json:
            render.emit_json(d)
            return
        p = res.plan
        verb = "would import" if dry_run else "imported"
        render.kv([("run", p.run_id + (f" (from {p.source_run_id})" if p.run_id != p.source_run_id else "")),
                   ("mode", p.mode + (" (dry run: nothing written)" if dry_run else "")),
                   ("rows", ", ".join(f"{t} {n}" for t, n in (res.rows_written or p.rows).items())),
                   ("objects", f"{res.objects_written if not dry_run else p.objects} "
                               f"({render.human_bytes(p.object_bytes)})"),
                   ("pipeline", res.pipeline or ("exists" if p.pipeline_exists else "will be inserted")),
                   ("signed by", _signed_by(p.signature)),
                   ("api", f"GET /api/v1/runs/{p.run_id}")])
        render.out.print(f"{verb} run {p.run_id}")


def _signed_by(sig: dict[str, Any]) -> str:
    if sig.get("status") == "trusted":
        return f"{sig.get('signer')} (trusted: {sig.get('trusted_key')})"
    if sig.get("status") == "untrusted":
        return f"{sig.get('signer')} (NOT TRUSTED here; imported with --allow-unsigned)"
    return "nobody (unsigned; imported with --allow-unsigned)"


def _summary(report: dict[str, Any]) -> str:
    by_type = report.get("by_type") or {}
    if not by_type:
        return "nothing found"
    return f"{report.get('total', 0)} values redacted (" + ", ".join(f"{t} {n}" for t, n in by_type.items()) + ")"
