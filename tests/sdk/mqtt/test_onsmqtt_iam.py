"""RAM-style policies on the OnsMqtt certificate APIs in verified mode, with the official SDK:
ApsaraMQ's own action names (InactivateDeviceCertificate is mq:UnregisterDeviceCertificate,
InactivateCaCertificate mq:UnregisterCaCertificate), the instance ARN
acs:mq:*:<uid>:<instance> as the resource, and PermissionCheckFailed (403) on a denial."""

from __future__ import annotations

import json

import pytest

from onsmqtt_harness import (
    INSTANCE_A, INSTANCE_A2, M, OnsMqttServer, all_cas, expect_error, get_device,
    list_devices_by_ca, make_cert, mqtt_client, pem_of, register_ca, register_device,
)
from certplane_server import find_key

pytestmark = pytest.mark.slow

UID = "1234567890123456"


@pytest.fixture(scope="module")
def srv(binary, tmp_path_factory):
    s = OnsMqttServer(binary, tmp_path_factory.mktemp("mqtt-iam") / "data", dev=False)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    s.root_key = s.create_access_key(UID)
    s.create_instance(UID, INSTANCE_A)
    s.create_instance(UID, INSTANCE_A2)
    s.start()
    try:
        yield s
    finally:
        s.stop()


_names = iter(range(10_000))


def user_with(srv, tmp_path, statements):
    name = f"mq{next(_names)}"
    srv.admin("user", "create", "--account", UID, "--name", name)
    if statements is not None:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"Version": "1", "Statement": statements}))
        srv.admin("policy", "create", "--account", UID, "--name", name, "--document", str(path))
        srv.admin("policy", "attach", "--account", UID, "--name", name, "--user", name)
    doc = srv.admin_json("access-key", "create", "--account", UID, "--user", name, "--json")
    return mqtt_client(srv, find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey"))


def root(srv):
    return mqtt_client(srv, *srv.root_key)


def inactivate_ca(c, sn, instance=INSTANCE_A):
    return c.inactivate_ca_certificate(M.InactivateCaCertificateRequest(mqtt_instance_id=instance, sn=sn))


def test_no_policy_is_permission_check_failed(srv, tmp_path):
    c = user_with(srv, tmp_path, None)
    with expect_error("PermissionCheckFailed", 403):
        all_cas(c)


def test_ram_name_not_api_name(srv, tmp_path):
    ca = register_ca(root(srv))
    sn = ca.extra["sn"]
    # The API's own name grants nothing: RAM knows the operation as mq:UnregisterCaCertificate.
    wrong = user_with(srv, tmp_path, [{"Effect": "Allow", "Action": "mq:InactivateCaCertificate", "Resource": "*"}])
    with expect_error("PermissionCheckFailed", 403):
        inactivate_ca(wrong, sn)
    assert {v.sn: v.status for v in all_cas(root(srv))}[sn] == "1"
    right = user_with(srv, tmp_path, [{"Effect": "Allow", "Action": "mq:UnregisterCaCertificate", "Resource": "*"}])
    inactivate_ca(right, sn)
    assert {v.sn: v.status for v in all_cas(root(srv))}[sn] == "0"


def test_instance_scoped_policy_and_explicit_deny(srv, tmp_path):
    r = root(srv)
    in_a = register_ca(r, INSTANCE_A).extra["sn"]
    in_a2 = register_ca(r, INSTANCE_A2).extra["sn"]
    c = user_with(srv, tmp_path, [
        {"Effect": "Allow", "Action": ["mq:*CaCertificate"], "Resource": f"acs:mq:*:{UID}:{INSTANCE_A}"},
        {"Effect": "Deny", "Action": "mq:DeleteCaCertificate", "Resource": "*"},
    ])
    inactivate_ca(c, in_a, INSTANCE_A)
    with expect_error("PermissionCheckFailed", 403):
        inactivate_ca(c, in_a2, INSTANCE_A2)
    assert {v.sn: v.status for v in all_cas(r, INSTANCE_A2)}[in_a2] == "1"
    with expect_error("PermissionCheckFailed", 403):
        c.delete_ca_certificate(M.DeleteCaCertificateRequest(mqtt_instance_id=INSTANCE_A, sn=in_a))
    assert in_a in {v.sn for v in all_cas(r, INSTANCE_A)}


def test_inactivate_device_is_unregister_device_certificate(srv, tmp_path):
    r = root(srv)
    ca = register_ca(r, INSTANCE_A)
    cert, _ = make_cert(ca, "iam_device")
    register_device(srv, INSTANCE_A, pem_of(cert))
    [rec] = list_devices_by_ca(r, ca.extra["sn"]).device_certificate_vos
    dev = rec.device_sn
    c = user_with(srv, tmp_path, [{"Effect": "Allow", "Action": "mq:UnregisterDeviceCertificate",
                                   "Resource": f"acs:mq:*:{UID}:{INSTANCE_A}"}])
    with expect_error("PermissionCheckFailed", 403):
        get_device(c, ca.extra["sn"], dev)
    c.inactivate_device_certificate(M.InactivateDeviceCertificateRequest(
        mqtt_instance_id=INSTANCE_A, ca_sn=ca.extra["sn"], device_sn=dev))
    assert get_device(r, ca.extra["sn"], dev).status == "0"


def test_disabled_key_is_inactive(srv):
    doc = srv.admin_json("access-key", "create", "--account", UID, "--json")
    akid = find_key(doc, "AccessKeyId")
    c = mqtt_client(srv, akid, find_key(doc, "SecretAccessKey"))
    all_cas(c)
    srv.admin("access-key", "disable", "--id", akid)
    with expect_error("InvalidAccessKeyId.Inactive", 400):
        all_cas(c)


def test_audit_rows_use_ram_names(srv, tmp_path):
    c = user_with(srv, tmp_path, None)
    with expect_error("PermissionCheckFailed", 403):
        inactivate_ca(c, "0" * 16)
    out = srv.admin("audit", "--json", "--account", UID, "--action", "mq:UnregisterCaCertificate").stdout
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    denied = [r for r in rows if r["outcome"] == "denied"]
    assert denied and denied[-1]["errorCode"] == "PermissionCheckFailed"
    assert denied[-1]["resource"] == f"acs:mq:*:{UID}:{INSTANCE_A}"
