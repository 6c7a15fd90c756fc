"""``swarm dev``: the embedded stack (PostgreSQL + SeaweedFS + state dir) and demo data."""
from __future__ import annotations

from pathlib import Path

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.config.settings import swarm_home
from swarm.config.urls import redact
from swarm.errors import ExitCode
from swarm.ui import render

app = typer.Typer(help="The embedded stack for a laptop, the demo and the tests.", no_args_is_help=True)


@app.command()
def up(kms: bool = typer.Option(False, "--kms", help="Also start moto's server as a KMS and make a KMS key in "
                                                    "us-east-1 the repository's key (docs/keys.md)."),
       as_json: bool = JSON_OPT) -> None:
    """Start PostgreSQL 15 and SeaweedFS on loopback, create the key and repository, write the config.

    With --kms (kept by later `up`s of the same stack) the key is a KMS key
    on moto's server: every command then needs AWS credentials in its
    environment (moto accepts any: `export AWS_ACCESS_KEY_ID=swarm-dev
    AWS_SECRET_ACCESS_KEY=swarm-dev`). moto forgets its keys when it stops,
    so the stack's backups do not survive `swarm dev down`."""
    import os

    from swarm.devstack.kms import DEV_CREDENTIALS
    from swarm.devstack.stack import DevStack

    info = DevStack(swarm_home()).up(kms=kms)
    if "kms_endpoint" in info:
        for name, value in DEV_CREDENTIALS.items():  # for the check below; later commands need them exported
            os.environ.setdefault(name, value)
        info["aws_env"] = {name: os.environ[name] for name in DEV_CREDENTIALS}
    # the configuration proven end to end (`admin check config`), so a broken archive shows at once
    from swarm.config import load_settings
    from swarm.services.context import check_configuration
    from swarm.ui.views import status as status_view

    checked = check_configuration(load_settings(info["config"]), drift_fails=False)
    info["check_config"] = checked.to_dict()
    if as_json:
        render.emit_json(info)
        if not checked.ok:
            raise typer.Exit(int(ExitCode.FAILED))
        return
    render.out.print("[bold green]swarm dev stack is up[/]")
    objects = f"{info['objects_endpoint']} bucket {info['objects_bucket']}"
    render.kv([("database", redact(info["db_url"]) + "  (password: dev/pg/superuser.pass; --json prints it)"),
               ("objects", objects),
               ("DR objects", f"{info['dr_objects_endpoint']} bucket {info['dr_objects_bucket']}"),
               ("state dir", info["state_dir"]), ("repository", info["repo"]), ("key", info["key_url"]),
               *([("KMS", info["kms_endpoint"] + " (moto's server: keys in memory only)")]
                 if "kms_endpoint" in info else []),
               ("config", info["config"])])
    render.out.print("Every `swarm admin` command now uses this stack. Stop it with `swarm dev down`.")
    if "aws_env" in info:
        render.out.print("The key is a KMS key: export AWS credentials first (moto accepts any): export "
                         + " ".join(f"{k}={v}" for k, v in info["aws_env"].items()), markup=False)
    status_view.config_result(checked, as_json=False)
    if not checked.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command()
def down(purge: bool = typer.Option(False, "--purge", help="Also delete the stack's data, repository, WAL stream spool "
                                                         "and config (the key stays)."),
         as_json: bool = JSON_OPT) -> None:
    """Stop the processes `swarm dev up` started (and only those)."""
    from swarm.devstack.stack import DevStack

    res = DevStack(swarm_home()).down(purge=purge)
    if as_json:
        render.emit_json(res)
    else:
        render.out.print(f"stopped: {', '.join(res['stopped']) or 'nothing was running'}"
                         + ("; data purged" if purge else ""))


@app.command()
def status(as_json: bool = JSON_OPT) -> None:
    """Say what runs."""
    from swarm.devstack.stack import DevStack

    st = DevStack(swarm_home()).status()
    if as_json:
        render.emit_json(st)
        return
    if not st["exists"]:
        render.out.print("no dev stack here; start one with `swarm dev up`")
        return
    pg, sw = st["postgres"], st["seaweedfs"]
    render.table(None, ["service", "state", "where", "pid"], [
        ["postgresql", "running" if pg["running"] else "stopped", f"127.0.0.1:{pg['port']}", pg["pid"]],
        ["seaweedfs", "running" if sw["running"] else "stopped", sw["endpoint"], sw["pid"]],
        ["seaweedfs (DR)", "running" if st["seaweedfs_dr"]["running"] else "stopped", st["seaweedfs_dr"]["endpoint"],
         st["seaweedfs_dr"]["pid"]],
        *([["kms (moto)", "running" if st["kms"]["running"] else "stopped", st["kms"]["endpoint"], st["kms"]["pid"]]]
          if st["kms"]["key_id"] else []),
    ])


@app.command()
def seed(ctx: typer.Context, runs: int = typer.Option(50, "--runs", min=1, help="Number of pipeline runs."),
         size_mb: float = typer.Option(5.0, "--size-mb", min=0.0, help="Target database size (MB)."),
         model_kb: int = typer.Option(64, "--model-kb", min=1, help="Size of each run's model artefact (KB)."),
         random_seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same data)."),
         stores: str = typer.Option("db,objects,state", "--stores",
                                    help="Which stores to fill: any of db, objects, state."),
         as_json: bool = JSON_OPT) -> None:
    """Fill all three stores with a realistic deployment (some of it carrying PII).

    Every object written under pipeline_runs/<run_id>/ is recorded in
    run_artefacts (key, size, SHA-256), so `swarm admin check stack` finds
    the stores in agreement.
    """
    from swarm.platform.seed import seed_database, seed_objects, seed_state_dir
    from swarm.storage.s3 import make_client

    s = settings(ctx)
    wanted = {x.strip() for x in stores.split(",") if x.strip()}
    if not wanted <= {"db", "objects", "state"} or "db" not in wanted:
        raise typer.BadParameter("--stores takes db, objects, state (db is always needed)")
    db_url = s.require("db_url", "the swarm database (SWARM_DB_URL)")
    result, run_rows = seed_database(db_url, runs=runs, size_mb=size_mb, seed=random_seed)
    if "objects" in wanted and (s.objects_endpoint or s.objects_bucket):
        client = make_client(s.objects_endpoint, s.objects_access_key, s.objects_secret_key, s.objects_region)
        result.objects, result.object_bytes = seed_objects(client, s.require("objects_bucket", "the artefact bucket"),
                                                           run_rows, model_kb=model_kb, seed=random_seed,
                                                           db_url=db_url)
    if "state" in wanted:
        result.state_files = seed_state_dir(Path(str(s.state_dir)), run_rows, seed=random_seed)
    if as_json:
        render.emit_json(result.to_dict())
        return
    render.out.print(f"seeded {result.pipelines} pipelines, {result.runs} runs, {result.events} events, "
                     f"{result.approvals} approvals, {result.denials} denials; {result.objects} objects "
                     f"({render.human_bytes(result.object_bytes)}); {result.state_files} state files")


@app.command()
def scratch(ctx: typer.Context, name: str = typer.Argument(..., help="Name of the new database (e.g. swarm_dev)."),
            as_json: bool = JSON_OPT) -> None:
    """Create a second, empty deployment on the dev stack: a database with the schema, a versioned
    bucket and an empty state directory."""
    from swarm.devstack.scratch import create_scratch

    s = settings(ctx)
    sc = create_scratch(name, s.require("db_url", "the dev database (run `swarm dev up`)"), s.objects_endpoint,
                        s.objects_access_key, s.objects_secret_key, s.home)
    if as_json:
        render.emit_json(sc.to_dict())
        return
    render.out.print(f"created database {name}, bucket {sc.objects_bucket} and state directory {sc.state_dir}. "
                     "Point swarm at them:")
    render.out.print(f"  export SWARM_DB_URL='{redact(sc.db_url)}' SWARM_OBJECTS_BUCKET='{sc.objects_bucket}' "
                     f"SWARM_STATE_DIR='{sc.state_dir}'  (the password: dev/pg/superuser.pass)", markup=False)
