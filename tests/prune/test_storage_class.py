"""``[repository.storage_class]``: each backup kind's data objects are put with its S3 storage class;
metadata stays in the default class. Against the real SeaweedFS (which the test writes to)."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from swarm.config.settings import load_settings
from swarm.crypto.keys import LocalKeyFile
from swarm.errors import ConfigError
from swarm.repo import Repository
from swarm.storage.s3 import S3Store, kind_of_key, make_client
from tests.prune.conftest import fake_backup


def test_settings_table(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text('[repository.storage_class]\npg-logical = "STANDARD_IA"\nwal = "onezone_ia"\n')
    assert load_settings(cfg).storage_class == {"pg-logical": "STANDARD_IA", "wal": "ONEZONE_IA"}
    assert load_settings().storage_class == {}
    for text, key in (('[repository.storage_class]\npg-logicl = "STANDARD_IA"\n',
                       "repository.storage_class.pg-logicl"),
                      ('[repository.storage_class]\nstate = "COLD"\n', "repository.storage_class.state"),
                      ('[repository]\nstorage_class = "STANDARD_IA"\n', "repository.storage_class")):
        cfg.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_settings(cfg)
        assert err.value.exit_code == 3 and key in err.value.message, err.value.message


def test_kind_of_key() -> None:
    assert kind_of_key("data/20261124T021955Z-pg-logical-3fa9c1/toc.dat") == "pg-logical"
    assert kind_of_key("data/20261124T021955Z-state-3fa9c1/packs/000000.pack") == "state"
    assert kind_of_key("wal/00000001/000000010000000000000003") == "wal"
    assert kind_of_key("backups/20261124T021955Z-pg-logical-3fa9c1.json") is None
    assert kind_of_key("keys/dek-1.json") is None


def test_puts_carry_the_kind_storage_class(seaweed: Any, kek: LocalKeyFile) -> None:
    client = make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    name = "sc-" + secrets.token_hex(6)
    client.create_bucket(Bucket=name)
    sent: dict[str, str | None] = {}

    def record(params: dict[str, Any], **_kw: Any) -> None:
        sent[params["Key"]] = params.get("StorageClass")

    client.meta.events.register("provide-client-params.s3.PutObject", record)
    client.meta.events.register("provide-client-params.s3.CreateMultipartUpload", record)
    store = S3Store(name, "repo", client=client, endpoint=seaweed.endpoint,
                    storage_class={"pg-logical": "STANDARD_IA"})
    repo = Repository.init(store, kek)
    logical = fake_backup(repo, "pg-logical")
    state = fake_backup(repo, "state")
    data_l, data_s = f"repo/data/{logical}/data.bin", f"repo/data/{state}/data.bin"
    assert sent[data_l] == "STANDARD_IA"  # the put request carried the class
    assert sent[data_s] is None and sent[f"repo/backups/{logical}.json"] is None
    assert all(v is None for k, v in sent.items() if "/data/" not in k)
    # what the server kept (real SeaweedFS): it stores the header and reports it on head_object
    head = client.head_object(Bucket=name, Key=data_l)
    assert head.get("StorageClass") == "STANDARD_IA", head.get("StorageClass")
    assert client.head_object(Bucket=name, Key=data_s).get("StorageClass") in (None, "STANDARD")
    meta = client.head_object(Bucket=name, Key=f"repo/backups/{logical}.json")
    assert meta.get("StorageClass") in (None, "STANDARD")


def test_the_configured_table_reaches_the_repositorys_puts(seaweed: Any, kek: LocalKeyFile, tmp_path: Path) -> None:
    """From swarm.toml to the stored object: a repository opened the way every command opens it
    (``open_repository``) writes a logical backup's data with the configured class."""
    from swarm.services.context import open_repository

    client = make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    name = "sc-" + secrets.token_hex(6)
    client.create_bucket(Bucket=name)
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(f'[repository]\nurl = "s3://{name}/repo"\nkey = "file://{kek.path}"\n'
                   f's3_endpoint = "{seaweed.endpoint}"\ns3_access_key = "{seaweed.access_key}"\n'
                   f's3_secret_key = "{seaweed.secret_key}"\n'
                   '[repository.storage_class]\npg-logical = "STANDARD_IA"\n')
    repo = open_repository(load_settings(cfg), create=True, remember=False)
    logical = fake_backup(repo, "pg-logical")
    head = client.head_object(Bucket=name, Key=f"repo/data/{logical}/data.bin")
    assert head.get("StorageClass") == "STANDARD_IA", head.get("StorageClass")
