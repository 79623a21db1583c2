"""`certplane admin cert list|show --json` against the running dev server's data dir."""

from __future__ import annotations

from aws_harness import ACCOUNT_A, ACCOUNT_B


def by_id(entries):
    assert isinstance(entries, list), f"admin cert list --json must print a JSON array, got {type(entries)}"
    return {e["id"]: e for e in entries}


def test_admin_cert_list_and_show(server, iot, iot_b):
    active = iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    revoked = iot.create_keys_and_certificate()["certificateId"]
    iot.update_certificate(certificateId=revoked, newStatus="REVOKED")
    other = iot_b.create_keys_and_certificate()["certificateId"]

    entries = by_id(server.admin_json("cert", "list", "--json"))
    assert {active, revoked, other} <= set(entries)
    for cid, status, owner in ((active, "ACTIVE", ACCOUNT_A), (revoked, "REVOKED", ACCOUNT_A),
                               (other, "INACTIVE", ACCOUNT_B)):
        e = entries[cid]
        assert e["status"] == status, e
        assert owner in str(e["owner"]), e
        assert e.get("notBefore") and e.get("notAfter"), e

    shown = server.admin_json("cert", "show", active, "--json")
    assert isinstance(shown, dict)
    assert shown["id"] == active
    assert shown["status"] == "ACTIVE"
    assert ACCOUNT_A in str(shown["owner"])
    assert shown.get("notBefore") and shown.get("notAfter")


def test_admin_cert_list_sees_transfers(server, iot, iot_b):
    cid = iot.create_keys_and_certificate()["certificateId"]
    iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B)
    assert server.admin_json("cert", "show", cid, "--json")["status"] == "PENDING_TRANSFER"
    iot_b.accept_certificate_transfer(certificateId=cid, setAsActive=True)
    shown = server.admin_json("cert", "show", cid, "--json")
    assert shown["status"] == "ACTIVE"
    assert ACCOUNT_B in str(shown["owner"])


def test_admin_cert_show_unknown_fails(server):
    res = server.admin("cert", "show", "ab" * 32, "--json", expect_ok=False)
    assert res.returncode != 0
