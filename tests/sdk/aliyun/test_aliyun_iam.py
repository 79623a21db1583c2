"""Identity and RAM-style policies for CAS in verified mode, with the official SDK: users with
their own AccessKey pairs, `yundun-cert:<Action>` on `acs:cas:*:<uid>:*`, NoPermission on a
denial, InvalidAccessKeyId.Inactive for a disabled key."""

from __future__ import annotations

import json

import pytest

from aliyun_harness import FREE, CertplaneServer, M, cas_client, create_order, expect_error, package_state
from certplane_server import find_key

pytestmark = pytest.mark.slow

UID = "2234567890123456"
OTHER_UID = "3234567890123456"


@pytest.fixture(scope="module")
def srv(binary, tmp_path_factory):
    s = CertplaneServer(binary, tmp_path_factory.mktemp("iam") / "data", dev=False)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    s.root_key = s.create_access_key(UID)
    s.create_access_key(OTHER_UID)
    s.start()
    s.add_package(UID, FREE, 20)
    try:
        yield s
    finally:
        s.stop()


_names = iter(range(10_000))


def key_of(srv, user=None):
    args = ["access-key", "create", "--account", UID, "--json"]
    if user:
        args += ["--user", user]
    doc = srv.admin_json(*args)
    return find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey")


def user_with(srv, tmp_path, *statements_lists):
    name = f"ram{next(_names)}"
    srv.admin("user", "create", "--account", UID, "--name", name)
    for i, statements in enumerate(statements_lists):
        path = tmp_path / f"{name}-{i}.json"
        path.write_text(json.dumps({"Version": "1", "Statement": statements}))
        srv.admin("policy", "create", "--account", UID, "--name", f"{name}-{i}", "--document", str(path))
        srv.admin("policy", "attach", "--account", UID, "--name", f"{name}-{i}", "--user", name)
    akid, secret = key_of(srv, name)
    return cas_client(srv, akid, secret)


def stmt(action, resource="*", effect="Allow"):
    return [{"Effect": effect, "Action": action, "Resource": resource}]


def test_root_key_may_do_everything(srv):
    c = cas_client(srv, *srv.root_key)
    assert package_state(c)[0] == 20


def test_no_policy_is_no_permission(srv, tmp_path):
    c = user_with(srv, tmp_path)
    with expect_error("NoPermission", 403) as e:
        package_state(c)
    assert "yundun-cert:DescribePackageState" in e.data["Message"]


def test_allowed_action_only_and_denial_changes_nothing(srv, tmp_path):
    c = user_with(srv, tmp_path, stmt("yundun-cert:DescribePackageState"))
    used = package_state(c)[1]
    with expect_error("NoPermission", 403):
        create_order(c, "www.iam-denied.com")
    assert package_state(c)[1] == used


def test_wildcard_action(srv, tmp_path):
    c = user_with(srv, tmp_path, stmt("yundun-cert:Describe*"))
    package_state(c)
    with expect_error("NoPermission", 403):
        c.list_user_certificate_order(M.ListUserCertificateOrderRequest())


def test_explicit_deny_wins(srv, tmp_path):
    c = user_with(srv, tmp_path, stmt("*"), stmt("yundun-cert:CreateCertificate*", effect="Deny"))
    used = package_state(c)[1]
    with expect_error("NoPermission", 403):
        create_order(c, "www.iam-deny.com")
    assert package_state(c)[1] == used


def test_resource_names_the_account(srv, tmp_path):
    mine = user_with(srv, tmp_path, stmt("yundun-cert:*", f"acs:cas:*:{UID}:*"))
    package_state(mine)
    other = user_with(srv, tmp_path, stmt("yundun-cert:*", f"acs:cas:*:{OTHER_UID}:*"))
    with expect_error("NoPermission", 403):
        package_state(other)


def test_disabled_key_is_inactive(srv, tmp_path):
    akid, secret = key_of(srv)
    c = cas_client(srv, akid, secret)
    package_state(c)
    srv.admin("access-key", "disable", "--id", akid)
    with expect_error("InvalidAccessKeyId.Inactive", 400):
        package_state(c)
    srv.admin("access-key", "enable", "--id", akid)
    package_state(c)
    srv.admin("access-key", "delete", "--id", akid)
    with expect_error("InvalidAccessKeyId.NotFound", 404):
        package_state(c)


def test_audit_rows(srv, tmp_path):
    c = user_with(srv, tmp_path, stmt("yundun-cert:DescribePackageState"))
    with expect_error("NoPermission", 403):
        create_order(c, "www.iam-audit.com")
    out = srv.admin("audit", "--json", "--account", UID, "--action",
                    "yundun-cert:CreateCertificateForPackageRequest").stdout
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert rows and rows[-1]["outcome"] == "denied" and rows[-1]["errorCode"] == "NoPermission"
    assert rows[-1]["dialect"] == "aliyun-cas" and rows[-1]["resource"] == f"acs:cas:*:{UID}:*"
    root = cas_client(srv, *srv.root_key)
    order = create_order(root, "www.iam-audit-ok.com")
    out = srv.admin("audit", "--json", "--account", UID, "--action",
                    "yundun-cert:CreateCertificateForPackageRequest").stdout
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert rows[-1]["outcome"] == "allowed" and rows[-1]["user"] is None, rows[-1]
    assert order > 0
