"""``swarm admin objects ...``, ``swarm admin backup objects``, ``swarm admin restore objects``.

Exit status (all commands): 0 done / in sync; 1 drift, replicas differ, or some keys failed
(the result lists them); 3 configuration (missing bucket settings, bad policy file,
wrong credentials); 7 S3 unreachable; 8 refused (versioning off where it is needed, a
backup of another kind); 9 no such backup, bucket or key.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui.views import objects as objects_view

WORKERS_OPT = typer.Option(8, "--workers", "-w", min=1, max=128, help="Parallel S3 operations.")
POLICY_OPT = typer.Option(None, "--policy", help="Policy TOML file (default: the built-in policy, see "
                                                 "docs/objects.md).", exists=True, dir_okay=False)
BUCKET_OPT = typer.Option(None, "--bucket", help="Bucket (default: SWARM_OBJECTS_BUCKET).")


def _policy(path: Path | None) -> Any:
    from swarm.model.bucket_policy import default_policy, parse_policy

    if path is None:
        return default_policy()
    return parse_policy(path.read_text(), where=str(path))


def _parse_at(text: str) -> datetime:
    from swarm.clock import parse_iso

    try:
        return parse_iso(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-24T09:30:00Z)",
                                 param_hint="--at") from None


def _fail_if(cond: bool) -> None:
    if cond:
        raise typer.Exit(int(ExitCode.FAILED))


def register(admin: typer.Typer, backup: typer.Typer, restore: typer.Typer) -> None:
    objects = typer.Typer(help="Object storage: policy, DR replication, point-in-time restore.",
                          no_args_is_help=True)
    policy = typer.Typer(help="Bucket protection policy as code.", no_args_is_help=True)
    replication = typer.Typer(help="Compare the bucket with its DR copy.", no_args_is_help=True)
    admin.add_typer(objects, name="objects")
    objects.add_typer(policy, name="policy")
    objects.add_typer(replication, name="replication")

    @policy.command("check")
    def policy_check(ctx: typer.Context, policy_file: Path = POLICY_OPT, bucket: str = BUCKET_OPT,
                     as_json: bool = JSON_OPT) -> None:
        """Compare the bucket with the policy, rule by rule. Exit 1 on drift."""
        from swarm.services.context import primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.objects.policy import check_policy

        s = settings(ctx)
        pol = _policy(policy_file)
        res = check_policy(open_bucket(primary_config(s, bucket)), pol, dr_bucket=s.dr_objects_bucket)
        d = res.to_dict()
        objects_view.policy(d, as_json=as_json)
        _fail_if(res.drifted)

    @policy.command("apply")
    def policy_apply(ctx: typer.Context, policy_file: Path = POLICY_OPT, bucket: str = BUCKET_OPT,
                     dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; change nothing."),
                     as_json: bool = JSON_OPT) -> None:
        """Make the bucket match the policy; report each rule (applied, in sync, unsupported)."""
        from swarm.services.context import primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.objects.policy import apply_policy

        s = settings(ctx)
        res = apply_policy(open_bucket(primary_config(s, bucket)), _policy(policy_file),
                           dr_bucket=s.dr_objects_bucket, dry_run=dry_run)
        d = res.to_dict()
        objects_view.policy(d, as_json=as_json)
        _fail_if(not dry_run and res.drifted)

    @objects.command("replicate")
    def replicate_cmd(ctx: typer.Context, prefix: str = typer.Option("", "--prefix", help="Only keys under this."),
                      workers: int = WORKERS_OPT, policy_file: Path = POLICY_OPT,
                      as_json: bool = JSON_OPT) -> None:
        """Copy every version and delete marker the DR bucket lacks (incremental, resumable)."""
        from swarm.services.context import dr_config, primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.objects.replicate import replicate

        s = settings(ctx)
        pol = _policy(policy_file)
        src = open_bucket(primary_config(s), workers=workers)
        dr = open_bucket(dr_config(s), workers=workers)
        with progress(as_json) as reporter:
            res = replicate(src, dr, prefix=prefix, workers=workers, storage_class=pol.replication.storage_class
                            or None, reporter=reporter)
        objects_view.replicated(res.to_dict(), as_json=as_json)
        _fail_if(not res.ok)

    @replication.command("check")
    def replication_check(ctx: typer.Context, prefix: str = typer.Option("", "--prefix"),
                          as_json: bool = JSON_OPT) -> None:
        """Compare source and DR: keys, versions, sizes, ETags, latest pointer, delete markers. Exit 1 if
        they differ."""
        from swarm.services.context import dr_config, primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.objects.replicate import check_replication

        s = settings(ctx)
        res = check_replication(open_bucket(primary_config(s)), open_bucket(dr_config(s)), prefix=prefix)
        objects_view.replication_check(res.to_dict(), as_json=as_json)
        _fail_if(not res.in_sync)

    @objects.command("restore")
    def restore_at_cmd(ctx: typer.Context, at: str = typer.Option(..., "--at", help="ISO 8601 time, e.g. "
                                                                                    "2026-11-24T09:30:00Z."),
                       prefix: str = typer.Option("", "--prefix"),
                       source: str = typer.Option("primary", "--from", help="primary | dr: whose history to use."),
                       from_dr: bool = typer.Option(False, "--from-dr", help="The same as --from dr."),
                       to_bucket: str = typer.Option(None, "--target-bucket", "--to-bucket",
                                                     help="Restore into this bucket (on the primary endpoint) "
                                                          "instead of in place; --to-bucket is the older spelling."),
                       dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; change nothing."),
                       force: bool = typer.Option(False, "--force", help="Allow a time in the future or before the "
                                                                         "bucket existed."),
                       workers: int = WORKERS_OPT, as_json: bool = JSON_OPT) -> None:
        """Make every key under the prefix read as it did at --at (deleted keys stay deleted, newer keys are
        removed, unchanged keys are not copied). A time before the bucket existed is refused (exit 8)."""
        from dataclasses import replace

        from swarm.services.context import dr_config, primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.objects.restore import restore_at

        if source not in ("primary", "dr"):
            raise typer.BadParameter("must be primary or dr", param_hint="--from")
        if from_dr:
            source = "dr"
        when = _parse_at(at)
        s = settings(ctx)
        primary = primary_config(s)
        src_cfg = primary if source == "primary" else dr_config(s)
        tgt_cfg = replace(primary, bucket=to_bucket) if to_bucket else primary
        src = open_bucket(src_cfg, workers=workers)
        tgt = src if tgt_cfg == src_cfg else open_bucket(tgt_cfg, workers=workers)
        with progress(as_json) as reporter:
            res = restore_at(src, tgt, when, prefix=prefix, dry_run=dry_run, workers=workers, reporter=reporter,
                             force=force)
        objects_view.restored_at(res.to_dict(), prefix=prefix, source=source, dry_run=dry_run,
                                 as_json=as_json)
        _fail_if(not res.ok)

    @objects.command("undelete")
    def undelete_cmd(ctx: typer.Context, key: str = typer.Argument(None, metavar="[KEY]"),
                     prefix: str = typer.Option(None, "--prefix", help="Undelete every deleted key under this."),
                     dry_run: bool = typer.Option(False, "--dry-run"), workers: int = WORKERS_OPT,
                     as_json: bool = JSON_OPT) -> None:
        """Remove the delete markers on top of a deleted key (or every deleted key under --prefix)."""
        from swarm.services.context import primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.objects.restore import undelete

        if (key is None) == (prefix is None):
            raise typer.BadParameter("give a KEY or --prefix (one of them)")
        s = settings(ctx)
        res = undelete(open_bucket(primary_config(s), workers=workers), key=key, prefix=prefix, dry_run=dry_run,
                       workers=workers)
        objects_view.undeleted(res.to_dict(), dry_run=dry_run, as_json=as_json)
        _fail_if(not res.ok)

    @objects.command("versions")
    def versions_cmd(ctx: typer.Context, key: str = typer.Argument(..., metavar="KEY"),
                     as_json: bool = JSON_OPT) -> None:
        """Every version and delete marker of one key, newest first."""
        from swarm.services.context import primary_config
        from swarm.services.objects.common import open_bucket
        from swarm.services.objects.restore import versions

        objects_view.versions(versions(open_bucket(primary_config(settings(ctx))), key), key, as_json=as_json)

    @backup.command("objects")
    def backup_objects_cmd(ctx: typer.Context, prefix: str = typer.Option("", "--prefix"),
                           copy_data: bool = typer.Option(False, "--copy-data", help="Also store the bytes "
                                                          "(deduplicated per object version)."),
                           workers: int = WORKERS_OPT, as_json: bool = JSON_OPT) -> None:
        """Record an inventory (key, version id, ETag, size, last-modified, storage class) of the bucket as of
        now in the repository."""
        from swarm.services.context import open_repository, primary_config
        from swarm.services.objects.backup import backup_objects
        from swarm.services.objects.common import open_bucket

        s = settings(ctx)
        bucket = open_bucket(primary_config(s), workers=workers)
        repo = open_repository(s, create=True)
        with progress(as_json) as reporter:
            res = backup_objects(repo, bucket, prefix=prefix, copy_data=copy_data, workers=workers,
                                 reporter=reporter)
        objects_view.backed_up(res, copy_data=copy_data, as_json=as_json)

    @restore.command("objects")
    def restore_objects_cmd(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"),
                            to_bucket: str = typer.Option(None, "--target-bucket", "--to-bucket",
                                                          help="Restore into this bucket (primary endpoint); "
                                                               "--to-bucket is the older spelling."),
                            dry_run: bool = typer.Option(False, "--dry-run"), workers: int = WORKERS_OPT,
                            as_json: bool = JSON_OPT) -> None:
        """Bring back exactly the versions an objects backup recorded, as the latest versions."""
        from dataclasses import replace

        from swarm.services.context import open_repository, primary_config
        from swarm.services.objects.backup import restore_objects
        from swarm.services.objects.common import open_bucket

        s = settings(ctx)
        repo = open_repository(s)
        m = repo.load_manifest(backup_id)
        cfg = primary_config(s, m.objects_source.bucket or None if m.kind == "objects" else None)
        src = open_bucket(cfg, workers=workers)
        tgt = open_bucket(replace(cfg, bucket=to_bucket), workers=workers) if to_bucket else src
        with progress(as_json) as reporter:
            res = restore_objects(repo, backup_id, src, tgt, dry_run=dry_run, workers=workers, reporter=reporter)
        objects_view.restored_backup(res.to_dict(), backup_id, dry_run=dry_run, as_json=as_json)
        _fail_if(not res.ok)
