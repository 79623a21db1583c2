"""Access-key secrets at rest: sealed under the master key (the one that seals the CA keys), so
neither the database nor an export holds a usable secret; signed requests keep working across
restarts, a master-key rotation while the server runs, and the sealing of keys an older release
stored in plain text."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

import sdk_engine
from aws_harness import iot_client
from certplane_server import CertplaneServer, find_key

pytestmark = pytest.mark.slow

ACCOUNT = "111122223333"


def make_key(srv) -> tuple[str, str]:
    doc = srv.admin_json("access-key", "create", "--account", ACCOUNT, "--json")
    return find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey")


def key_lines(srv) -> dict[str, dict]:
    out = srv.admin("export").stdout
    lines = [json.loads(l) for l in out.splitlines()[1:]]
    return {l["key"]: l for l in lines if l["kind"] == "access_key"}


def works(srv, key, within: float = 0.0) -> bool:
    """A signed call with `key` succeeds (retried for `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        try:
            iot_client(srv.url, access_key=key[0], secret=key[1]).list_certificates()
            return True
        except Exception:  # noqa: BLE001 - any refusal counts as "does not work"
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


@pytest.fixture
def srv(binary, tmp_path):
    s = CertplaneServer(binary, tmp_path / "data", dev=False).start()
    s.admin("account", "create", "--aws-account-id", ACCOUNT)
    yield s
    s.stop()


def test_secrets_are_sealed_at_rest_and_keep_working(srv):
    key = make_key(srv)
    assert works(srv, key)
    line = key_lines(srv)[key[0]]
    assert key[1] not in json.dumps(line), "the export holds the plain secret"
    sealed = line["body"]["sealed_secret"]
    assert sealed["masterKeyId"] and sealed["ciphertext"] and line["body"]["secret"] == ""
    if sdk_engine.ENGINE == "sqlite":
        db = sqlite3.connect(srv.data_dir / "certplane.db")
        bodies = [b for (b,) in db.execute("SELECT body FROM documents "
                                           "UNION ALL SELECT body FROM audit_events")]
        db.close()
        assert not any(key[1] in b for b in bodies), "the database holds the plain secret"
    srv.stop()
    srv.start()
    assert works(srv, key)


def test_master_key_rotation_while_running_reseals_the_secrets(srv, tmp_path):
    key = make_key(srv)
    before = key_lines(srv)[key[0]]["body"]["sealed_secret"]["masterKeyId"]
    new_key = tmp_path / "new.key"
    new_key.write_text(os.urandom(32).hex() + "\n")
    srv.admin("ca", "rotate-master-key", "--new-master-key-file", str(new_key))
    after = key_lines(srv)[key[0]]["body"]["sealed_secret"]["masterKeyId"]
    assert after != before
    # The running server picks the new key up with the CA records (within about 2 s).
    assert works(srv, key, within=6.0), "the key stopped working after the rotation"
    later = make_key(srv)
    assert works(srv, later)
    srv.stop()
    srv.start()
    assert works(srv, key) and works(srv, later)


@pytest.mark.skipif(sdk_engine.ENGINE != "sqlite", reason="edits the SQLite file directly")
def test_plain_secrets_of_an_older_release_are_sealed_at_start(srv):
    key = make_key(srv)
    srv.stop()
    db = sqlite3.connect(srv.data_dir / "certplane.db")
    (body,) = db.execute("SELECT body FROM documents WHERE kind = 'access_key' AND key = ?",
                         (key[0],)).fetchone()
    doc = json.loads(body)
    doc.pop("sealed_secret")
    doc["secret"] = key[1]  # as a release before sealing stored it
    db.execute("UPDATE documents SET body = ?, version = version + 1 WHERE kind = 'access_key' "
               "AND key = ?", (json.dumps(doc), key[0]))
    db.commit()
    db.close()
    srv.start()
    assert works(srv, key)
    line = key_lines(srv)[key[0]]
    assert "sealed_secret" in line["body"] and key[1] not in json.dumps(line)
