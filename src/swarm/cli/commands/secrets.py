"""``swarm admin secrets``: the secrets swarm needs are where they belong, and nowhere else."""
from __future__ import annotations

from pathlib import Path

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui.views import secrets as secrets_view

app = typer.Typer(help="Check the secrets swarm needs (JWT secret, OIDC client secret, LLM API keys).",
                  no_args_is_help=True)


@app.command("check")
def check(ctx: typer.Context,
          export: list[Path] = typer.Option([], "--export", metavar="FILE",
                                            help="An `admin export` archive to scan too (repeat for more)."),
          as_json: bool = JSON_OPT) -> None:
    """Are the secrets present and real, and kept out of config and backups?

    Each secret of the [secrets] table (default: SWARM_JWT_SECRET,
    SWARM_OIDC_CLIENT_SECRET, SWARM_LLM_API_KEY from the environment) is read
    from its source (env:NAME, file:/path, aws-secretsmanager:ID?region=R)
    and must not be empty, a placeholder or short. Then swarm.toml, the live
    state directory, the newest state snapshot (decrypted, streamed) and each
    --export archive are scanned for the secrets' values (compared as keyed
    hashes) and for secret shapes; each file where one is found is named.
    No value is ever printed or stored. Writes nothing.

    Exit status:
    0 every secret present, nothing found;
    1 a secret is missing, unreadable, empty, a placeholder or too short, or
      was found where it must not be;
    3 configuration invalid (an unknown [secrets] key or source scheme);
    4 the repository's key is missing or wrong; 7 the repository cannot be
      reached; 9 an --export archive does not exist.
    """
    from swarm.services.context import open_repository, state_scope
    from swarm.services.secrets import check_secrets

    s = settings(ctx)
    assert s.secrets is not None
    with progress(as_json) as reporter:
        res = check_secrets(s.secrets, config_path=s.config_path if s.config_found else None, scope=state_scope(s),
                            open_repo=(lambda: open_repository(s, remember=False)) if s.repo else None,
                            exports=export, reporter=reporter)
    secrets_view.check_result(res, as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))
