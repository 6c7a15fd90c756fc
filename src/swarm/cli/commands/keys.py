"""``swarm admin keys``: the key-encryption key, and the export signing key and trusted exporters.

Exit status: 0 done; 3 configuration; 4 a key file is unreadable, malformed or not 0600
(``signing-key``); 8 refused (the output exists without --force; two trusted keys share a
fingerprint).
"""
from __future__ import annotations

from pathlib import Path

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.ui import render

app = typer.Typer(help="Manage the key-encryption key that seals every backup, this deployment's export signing key "
                       "and the exporters whose run archives it trusts.", no_args_is_help=True)


@app.command("init")
def init(ctx: typer.Context,
         path: Path = typer.Option(None, "--path", help="Where to write the key (default: SWARM_KEY_URL, else "
                                                        "$SWARM_HOME/keys/repo.key)."),
         as_json: bool = JSON_OPT) -> None:
    """Create a new random 256-bit key file (mode 0600). Refuses to overwrite one."""
    from swarm.crypto.keys import create_key_file, key_path_from_url

    s = settings(ctx)
    target = path or key_path_from_url(str(s.key_url))
    kek = create_key_file(target)
    if as_json:
        render.emit_json({"path": str(target), "key_id": kek.key_id})
        return
    render.out.print(f"created {target} ({kek.key_id}), mode 0600")
    render.err.print("Keep a copy of this file offline: without it no backup sealed with it can be restored.")


@app.command("export-public")
def export_public(ctx: typer.Context,
                  output: Path = typer.Argument(..., help="File to write this deployment's public key to (PEM)."),
                  force: bool = typer.Option(False, "--force", help="Replace FILE if it exists."),
                  as_json: bool = JSON_OPT) -> None:
    """Write the public half of this deployment's export signing key, for importers to trust.

    Run it on the exporting deployment (prod), copy FILE to the importing
    one (dev) and run `swarm admin keys trust FILE` there. The key pair
    ($SWARM_HOME/keys/export-signing.key, 0600) is created if this
    deployment has none yet."""
    from swarm.services.transfer.trust import export_public as write_public

    s = settings(ctx)
    key, created = write_public(s.home, output, force=force)
    if as_json:
        render.emit_json({"path": str(output), "fingerprint": key.fingerprint, "key": str(key.path),
                          "created": created})
        return
    if created:
        render.err.print(f"created this deployment's export signing key {key.path} (mode 0600)", markup=False)
    render.out.print(f"wrote {output}: public key {key.fingerprint}", markup=False)
    render.err.print("On the importing deployment: `swarm admin keys trust FILE` (compare the fingerprint it prints).",
                     markup=False)


@app.command("trust")
def trust(ctx: typer.Context,
          public_key: Path = typer.Argument(..., help="A public key written by `swarm admin keys export-public` on "
                                                      "the exporting deployment."),
          as_json: bool = JSON_OPT) -> None:
    """Trust run archives signed by the deployment whose public key is in FILE.

    Compare the fingerprint printed here with the one `export-public`
    printed there. The key is kept in $SWARM_HOME/trusted-exporters/ and
    `swarm admin import` accepts archives it signed. Trusting a key twice
    changes nothing."""
    from swarm.services.transfer.trust import trust_key

    s = settings(ctx)
    key, added = trust_key(s.home, public_key)
    if as_json:
        render.emit_json({**key.to_dict(), "added": added})
        return
    if added:
        render.out.print(f"trusted {key.fingerprint} (kept in {key.path})", markup=False)
    else:
        render.out.print(f"{key.fingerprint} was trusted already ({'own key' if key.own else key.path})",
                         markup=False)


@app.command("trusted")
def trusted(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the keys whose run archives `swarm admin import` accepts (this deployment's own first)."""
    from swarm.services.transfer.trust import load_trust

    s = settings(ctx)
    keys = load_trust(s.home).keys
    if as_json:
        render.emit_json({"keys": [k.to_dict() for k in keys]})
        return
    if not keys:
        render.out.print("no trusted exporters (and no export signing key yet)")
    for k in keys:
        render.out.print(f"{k.fingerprint}  {'own signing key' if k.own else 'trusted exporter'}  {k.path}",
                         markup=False)


@app.command("untrust")
def untrust(ctx: typer.Context,
            fingerprint: str = typer.Argument(..., help="The fingerprint (ed25519:...) to stop trusting."),
            as_json: bool = JSON_OPT) -> None:
    """Stop trusting an exporter's key (this deployment's own key cannot be untrusted)."""
    from swarm.errors import NotFoundError
    from swarm.services.transfer.trust import untrust_key

    s = settings(ctx)
    removed = untrust_key(s.home, fingerprint)
    if not removed:
        raise NotFoundError(f"{fingerprint} is not a trusted exporter", hint="`swarm admin keys trusted` lists them.")
    if as_json:
        render.emit_json({"fingerprint": fingerprint, "removed": removed})
        return
    render.out.print(f"no longer trusted: {fingerprint}", markup=False)
