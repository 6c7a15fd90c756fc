"""``swarm admin secrets check`` through the real CLI: exit codes and --json are the contract, and
no secret value ever appears in what it prints (``Deployment.check`` asserts that on every call)."""
from __future__ import annotations

import json

import pytest

from .conftest import AWS, REGION, Deployment, sm_client, strong

pytestmark = pytest.mark.integration


def by_name(d: dict) -> dict[str, dict]:
    return {s["name"]: s for s in d["secrets"]}


def test_clean_deployment_passes(deployment: Deployment) -> None:
    code, out, err, d = deployment.check()
    assert code == 0, (out, err)
    assert d["ok"] is True and d["findings"] == []
    s = by_name(d)
    assert set(s) == {"jwt", "oidc_client_secret", "llm.default"}
    assert all(x["state"] == "ok" for x in s.values())
    assert s["oidc_client_secret"]["source"] == f"file:{deployment.secret_file}"
    assert s["oidc_client_secret"]["length"] == len(deployment.values["file"])  # the trailing newline is not in it
    assert s["oidc_client_secret"]["warnings"] == []
    places = {p["place"]: p for p in d["scanned"]}
    assert set(places) == {"config", "state-dir", "state-snapshot"}
    assert places["state-dir"]["files"] == 7 and places["state-snapshot"]["files"] == 7
    # the human output: OK, names and sources, no values
    code, out, err, _ = deployment.cli("admin", "secrets", "check")
    assert code == 0 and out.startswith("OK") and "env:SWARM_JWT_SECRET" in out
    assert all(v not in out + err for v in deployment.values.values())


def test_secret_planted_in_state_dir(deployment: Deployment) -> None:
    jwt = deployment.values["SWARM_JWT_SECRET"]
    run = deployment.state / "batch" / "run-0001"
    (run / "env.json").write_text(json.dumps({"config": {"auth": {"jwt_secret": jwt}}}))
    # an LLM key in the middle of a long line, across the scanner's read pieces
    (run / "big.log").write_bytes(b"x " * 600_000 + b"key=" + deployment.values["SWARM_LLM_API_KEY"].encode()
                                  + b" " + b"y " * 10)
    # a secret shape (an AWS access key id) that is no configured secret's value
    (deployment.state / "cron" / "notes.txt").write_text("aws key AKIAIOSFODNN7EXAMPLE for the bucket\n")
    code, out, err, d = deployment.check()
    assert code == 1 and d["ok"] is False
    found = {(f["place"], f["path"]): f for f in d["findings"]}
    assert set(found) == {("state-dir", "batch/run-0001/env.json"), ("state-dir", "batch/run-0001/big.log"),
                          ("state-dir", "cron/notes.txt")}
    assert found[("state-dir", "batch/run-0001/env.json")]["secrets"] == ["jwt"]
    assert found[("state-dir", "batch/run-0001/big.log")]["secrets"] == ["llm.default"]
    assert found[("state-dir", "cron/notes.txt")]["shapes"] == ["AWS access key id"]
    assert all(f["where"] == str(deployment.state) for f in d["findings"])
    code, out, err, _ = deployment.cli("admin", "secrets", "check")
    assert code == 1 and "batch/run-0001/env.json: the value of jwt" in out
    assert jwt not in out + err


def test_secret_in_newest_state_snapshot(deployment: Deployment) -> None:
    oidc = deployment.values["file"]
    leak = deployment.state / "batch" / "run-0002" / "oidc-debug.txt"
    leak.write_text(f"client_secret: {oidc}\n")
    code, _, err, first = deployment.cli("admin", "backup", "state", "--json")
    assert code == 0, err
    leak.unlink()  # gone from the live directory; still in the newest snapshot
    code, _, _, d = deployment.check()
    assert code == 1
    assert d["findings"] == [{"place": "state-snapshot", "where": first["id"],
                              "path": "batch/run-0002/oidc-debug.txt", "secrets": ["oidc_client_secret"],
                              "shapes": []}]
    # a newer clean snapshot: the newest is what is scanned
    code, _, err, _ = deployment.cli("admin", "backup", "state")
    assert code == 0, err
    code, _, _, d = deployment.check()
    assert code == 0 and d["findings"] == []


def test_secret_in_config_file(deployment: Deployment) -> None:
    jwt = deployment.values["SWARM_JWT_SECRET"]
    deployment.write_config(deployment.config.read_text() + f'\n[database]\nurl = "postgresql://u:{jwt}@h/db"\n')
    code, _, _, d = deployment.check()
    assert code == 1
    assert [(f["place"], f["path"], f["secrets"]) for f in d["findings"]] == [("config", "swarm.toml", ["jwt"])]


BAD_VALUES = [  # (value, what the problem says); one secret each, all checked by one run
    (None, "is not set"),
    ("", "empty"),
    ("   ", "empty"),
    ("changeme", "placeholder"),
    ("CHANGEME-please-CHANGEME", "placeholder (TODO)"),
    ("xxxxxxxxxxxxxxxxxxxxxxxx", "placeholder"),
    ("<your jwt secret here>", "placeholder (<...>)"),
    ("TODO: set me before going live", "placeholder (TODO)"),
    ("${JWT_SECRET}", "placeholder (${...})"),
    ("aaaaaaaaaaaaaaaaaaaaaaaa", "one repeated character"),
    ("s3cr3t-v4lue", "12 bytes, shorter than 16"),
]


def test_missing_empty_or_placeholder_fails(bare: Deployment) -> None:
    deployment = bare
    table = f'[secrets]\noidc_client_secret = "file:{deployment.secret_file}"\n[secrets.llm]\ngood = "env:GOOD"\n'
    deployment.extra_env["GOOD"] = deployment.values["GOOD"] = strong()
    for i, (value, _) in enumerate(BAD_VALUES):
        table += f'bad{i} = "env:BAD_{i}"\n'
        if value is not None:
            deployment.extra_env[f"BAD_{i}"] = deployment.values[f"BAD_{i}"] = value
    deployment.write_config(table)
    code, _, _, d = deployment.check()
    assert code == 1 and d["ok"] is False
    s = by_name(d)
    for i, (value, problem) in enumerate(BAD_VALUES):
        bad = s[f"llm.bad{i}"]
        assert bad["ok"] is False and problem in bad["problem"], (value, bad)
        assert bad["state"] == ("missing" if value is None else "weak")
    assert s["llm.good"]["ok"] is True and s["jwt"]["ok"] is True and s["oidc_client_secret"]["ok"] is True
    # the same rule for the default secrets: an unset SWARM_JWT_SECRET fails, named
    del deployment.values["SWARM_JWT_SECRET"]
    code, out, _, _ = deployment.cli("admin", "secrets", "check")
    assert code == 1 and "SWARM_JWT_SECRET is not set" in out and out.startswith("FAILED")


def test_missing_file_and_min_length(bare: Deployment) -> None:
    deployment = bare
    deployment.secret_file.unlink()
    deployment.write_config(f'[secrets]\noidc_client_secret = "file:{deployment.secret_file}"\nmin_length = 64\n'
                            '[secrets.llm]\nopenai = "env:OPENAI_API_KEY"\nanthropic = "env:ANTHROPIC_API_KEY"\n')
    deployment.extra_env["OPENAI_API_KEY"] = deployment.values["OPENAI"] = "sk-" + strong() + strong()
    code, _, _, d = deployment.check()
    assert code == 1
    s = by_name(d)
    assert set(s) == {"jwt", "oidc_client_secret", "llm.openai", "llm.anthropic"}
    assert s["oidc_client_secret"]["state"] == "missing" and "does not exist" in s["oidc_client_secret"]["problem"]
    assert s["jwt"]["state"] == "weak" and "shorter than 64" in s["jwt"]["problem"]
    assert s["llm.openai"]["ok"] is True and s["llm.anthropic"]["state"] == "missing"


def test_not_used_secret_is_not_checked(bare: Deployment) -> None:
    deployment = bare
    deployment.secret_file.chmod(0o644)
    deployment.write_config(f'[secrets]\noidc_client_secret = ""\njwt = "file:{deployment.secret_file}"\n')
    code, _, _, d = deployment.check()
    assert code == 0, d
    assert set(by_name(d)) == {"jwt", "llm.default"} and d["not_used"] == ["oidc_client_secret"]
    assert by_name(d)["jwt"]["warnings"] == ["the file is readable by others than its owner (mode 0o644); chmod 600 it"]
    assert d["not_scanned"] == [{"place": "state-snapshot",
                                 "reason": "no backup repository is configured (SWARM_BACKUP_REPO)"}]


def test_secrets_manager(bare: Deployment, moto_endpoint: str) -> None:
    deployment = bare
    client = sm_client(moto_endpoint)
    name = f"swarm/jwt-{strong()[:8]}"
    first, second = strong(), strong()
    client.create_secret(Name=name, SecretString=first)
    deployment.values["SM-first"] = first
    deployment.extra_env.update(AWS)
    url = f"aws-secretsmanager:{name}?region={REGION}&endpoint={moto_endpoint}"
    deployment.write_config(f'[secrets]\njwt = "{url}"\noidc_client_secret = "file:{deployment.secret_file}"\n')
    code, _, _, d = deployment.check()
    assert code == 0, d
    jwt = by_name(d)["jwt"]
    assert jwt["state"] == "ok" and jwt["source"] == url and jwt["length"] == len(first)
    assert jwt["facts"]["versions"] == 1 and jwt["facts"]["previous"] is False
    assert any("AWSPREVIOUS" in w for w in jwt["warnings"])
    # a new value: the old one is kept as AWSPREVIOUS; the current one is what is looked for
    client.put_secret_value(SecretId=name, SecretString=second)
    deployment.values["SM-second"] = second
    (deployment.state / "cron" / "copy.txt").write_text(second)
    code, _, _, d = deployment.check()
    assert code == 1
    jwt = by_name(d)["jwt"]
    assert jwt["ok"] is True and jwt["facts"]["previous"] is True and jwt["facts"]["versions"] == 2
    assert jwt["warnings"] == []
    assert [(f["path"], f["secrets"]) for f in d["findings"]] == [("cron/copy.txt", ["jwt"])]
    (deployment.state / "cron" / "copy.txt").unlink()
    # scheduled for deletion: missing
    client.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    code, _, _, d = deployment.check()
    assert code == 1 and by_name(d)["jwt"]["state"] == "missing"
    assert "scheduled for deletion" in by_name(d)["jwt"]["problem"]
    # a secret that does not exist
    deployment.write_config(f'[secrets]\njwt = "aws-secretsmanager:swarm/nope?region={REGION}&endpoint='
                            f'{moto_endpoint}"\noidc_client_secret = "file:{deployment.secret_file}"\n')
    code, _, _, d = deployment.check()
    assert code == 1 and by_name(d)["jwt"]["state"] == "missing" and "does not exist" in by_name(d)["jwt"]["problem"]


@pytest.mark.parametrize("table, key", [
    ('[secrets]\njwt = "vault:secret/jwt"\n', "jwt"),
    ('[secrets]\njwt_secret = "env:X"\n', "jwt_secret"),
    ('[secrets.llm]\nopenai = "ssm:/swarm/openai"\n', "llm.openai"),
    ('[secrets]\noidc_client_secret = "file:relative/path"\n', "oidc_client_secret"),
    ('[secrets]\njwt = "aws-secretsmanager:swarm/jwt"\n', "jwt"),
    ('[secrets]\nmin_length = 4\n', "min_length"),
])
def test_bad_secrets_table_is_exit_3_naming_the_key(bare: Deployment, table: str, key: str) -> None:
    deployment = bare
    deployment.write_config(table)
    code, out, err, d = deployment.cli("admin", "secrets", "check", "--json")
    assert code == 3, (out, err)
    assert d["error"] == "config" and d["details"]["key"] == key and f"[secrets] {key} " in d["message"]


def test_bad_secrets_table_human_output(bare: Deployment) -> None:
    bare.write_config('[secrets]\njwt = "vault:secret/jwt"\n')
    code, _, err, _ = bare.cli("admin", "secrets", "check")
    assert code == 3 and "[secrets] jwt" in err and "unknown source scheme 'vault'" in err
