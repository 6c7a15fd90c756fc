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


@app.command("rotate")
def rotate(ctx: typer.Context,
           to: str = typer.Option(None, "--to", metavar="URL",
                                  help="The new key: file:///path or awskms:///<key>?region=R[&endpoint=URL] "
                                       "(default for a key file: a new key file beside it)."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be rewrapped; write nothing."),
           as_json: bool = JSON_OPT) -> None:
    """Rewrap every secret the key-encryption key wraps (data keys, dedup, metadata and WAL secrets,
    the key check) with a new key, without re-encrypting any data.

    The configured key (SWARM_KEY_URL) must open the repository. Both keys
    read it until `swarm admin keys retire OLD_KEY_ID`; afterwards point
    SWARM_KEY_URL at the new key. Safe to interrupt and run again.

    Exit status: 0 done; 3 configuration; 4 a key is missing, wrong or
    revoked; 7 the key provider cannot be reached; 8 the new key is the
    configured one."""
    from swarm.services.context import rotate_keys

    done = rotate_keys(settings(ctx), to, dry_run=dry_run)
    res = done.result
    if as_json:
        render.emit_json({**res.to_dict(), "to_url": done.to_url, "created_key_file": done.created})
        return
    verb = "would rewrap" if res.dry_run else "rewrapped"
    render.out.print(f"{verb} {len(res.rewrapped)} of {res.files} key files from {res.from_key} to {res.to_key} "
                     f"({res.already} already done){'; the key check too' if res.config_updated else ''}",
                     markup=False)
    if not res.dry_run:
        if done.created:
            render.err.print(f"created the new key file {done.to_url[len('file://'):]} (mode 0600): keep a copy "
                             "offline", markup=False)
        render.err.print(f"Now set SWARM_KEY_URL={done.to_url}; run `swarm admin verify`, then "
                         f"`swarm admin keys retire {res.from_key}`.", markup=False)


@app.command("retire")
def retire(ctx: typer.Context,
           key_id: str = typer.Argument(..., metavar="OLD_KEY_ID",
                                        help="The rotated-away key (`swarm admin keys status`)."),
           as_json: bool = JSON_OPT) -> None:
    """Stop a rotated-away key from opening the repository: its wraps are removed.

    Run it with the new key configured, after `swarm admin verify`. Refused
    while the key is the primary one or a key file is wrapped by it alone.

    Exit status: 0 done; 4 the configured key does not open the repository;
    8 refused; 9 no such key in the repository."""
    from swarm.services.context import retire_key

    res = retire_key(settings(ctx), key_id)
    if as_json:
        render.emit_json(res.to_dict())
        return
    render.out.print(f"retired {res.key}: removed from {res.files} key files"
                     f"{' and the key check' if res.config_updated else ''}", markup=False)


@app.command("status")
def status(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Which key-encryption keys open the repository, and which key files each one wraps.

    Makes no key provider call. Exit status: 0; 3 configuration."""
    from swarm.services.context import keys_status

    st = keys_status(settings(ctx))
    if as_json:
        render.emit_json(st)
        return
    render.out.print(f"repository {st['repo_id']}: {st['files']} key files, {len(st['backups'])} backups",
                     markup=False)
    for k in st["keys"]:
        role = "primary" if k["primary"] else ("also opens" if k["opens"] else "wraps only")
        miss = f", missing {len(k['missing'])}: {', '.join(k['missing'][:5])}" if k["missing"] else ""
        render.out.print(f"  {k['kek_id']}  {role}  wraps {k['files']}/{st['files']}{miss}", markup=False)
    if not st["rotation_complete"]:
        render.err.print("the primary key does not wrap every key file: run `swarm admin keys rotate --to <primary>` "
                         "with the old key configured", markup=False)
