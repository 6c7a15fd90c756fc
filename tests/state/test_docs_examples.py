"""The Docker Compose and Kubernetes recipes of docs/state.md are valid YAML of the expected shape,
and the swarm command line each runs restores a real snapshot (with the volume mapped to a temp dir)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.state.conftest import StateEnv, tree_of

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def render(text: str, backup_id: str) -> str:
    """What `docker compose` / the documented `sed` do: ${BACKUP_ID} filled in, ${VAR:-default} defaulted."""
    text = text.replace("${BACKUP_ID}", backup_id)
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", lambda m: m.group(1), text)


def _compose(doc: dict[str, Any]) -> tuple[list[str], str]:
    svc = doc["services"]["restore-state"]
    mount = next(v.split(":", 1)[1] for v in svc["volumes"] if v.startswith("swarm-state:"))
    assert doc["volumes"]["swarm-state"]["external"] is True
    assert svc["environment"]["SWARM_KEY_URL"].startswith("file:///run/secrets/")
    return list(svc["command"]), mount


def _job(doc: dict[str, Any]) -> tuple[list[str], str]:
    assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "Job"
    spec = doc["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (c,) = spec["containers"]
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["state"]["persistentVolumeClaim"]["claimName"] == "swarm-state"
    mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "state")
    return list(c["args"]), mount


@pytest.mark.parametrize(("name", "shape"), [("state-restore-compose.yaml", _compose),
                                             ("state-restore-k8s-job.yaml", _job)])
def test_recipe_renders_parses_and_its_command_restores(name: str, shape: Any, senv: StateEnv, tmp_path: Path) \
        -> None:
    rc, _, err, data = senv.cli("admin", "backup", "state", "--json")
    assert rc == 0, err
    backup_id = data["id"]
    doc = yaml.safe_load(render((EXAMPLES / name).read_text(), backup_id))
    argv, mount = shape(doc)
    assert argv[:4] == ["swarm", "admin", "restore", "state"] and argv[4] == backup_id
    target = argv[argv.index("--target-state") + 1]
    assert target.startswith(mount.rstrip("/") + "/")  # a directory inside the volume, not its mount point
    volume = tmp_path / "volume"
    volume.mkdir()
    local = [a.replace(mount, str(volume)) for a in argv[1:]]
    rc, _, err, out = senv.cli(*local)
    assert rc == 0, err
    assert out["point_swarm_at_it"] == f"export SWARM_STATE_DIR={target.replace(mount, str(volume))}"
    assert tree_of(Path(out["target"])) == tree_of(senv.state)
