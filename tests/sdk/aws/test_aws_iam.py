"""Identity and IAM-style policies in verified mode, with boto3: users inside an account, their
own access keys, policies with `iot:<Operation>` actions on the ARNs the operations touch, and
disabled keys. Keys made without --user are the account's root user and may do everything."""

from __future__ import annotations

import shutil

import json

import pytest
from botocore.exceptions import ClientError

from aws_harness import cert_arn, expect_error, iot_client
from certplane_server import CertplaneServer, find_key

ACCOUNT = "111122223333"
OTHER = "444455556666"


@pytest.fixture(scope="module")
def srv(binary, tmp_path_factory):
    s = CertplaneServer(binary, tmp_path_factory.mktemp("iam") / "data", dev=False).start()
    try:
        for account in (ACCOUNT, OTHER):
            s.admin("account", "create", "--aws-account-id", account)
        yield s
    finally:
        s.stop()


def make_key(srv, account=ACCOUNT, user=None):
    args = ["access-key", "create", "--account", account, "--json"]
    if user:
        args += ["--user", user]
    doc = srv.admin_json(*args)
    return find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey")


def client_for(srv, key):
    return iot_client(srv.url, access_key=key[0], secret=key[1])


def root(srv, account=ACCOUNT):
    return client_for(srv, make_key(srv, account))


_names = iter(range(10_000))


def user_with(srv, tmp_path, *documents, account=ACCOUNT):
    """A fresh user with one policy per document attached, and a client signing as it."""
    name = f"user{next(_names)}"
    srv.admin("user", "create", "--account", account, "--name", name, "--email", f"{name}@example.com")
    for i, d in enumerate(documents):
        path = tmp_path / f"{name}-{i}.json"
        path.write_text(json.dumps(d))
        pname = f"{name}-p{i}"
        srv.admin("policy", "create", "--account", account, "--name", pname, "--document", str(path))
        srv.admin("policy", "attach", "--account", account, "--name", pname, "--user", name)
    return name, client_for(srv, make_key(srv, account, name))


def allow(actions, resources="*", effect="Allow", **extra):
    stmt = {"Effect": effect, "Action": actions, "Resource": resources, **extra}
    return {"Version": "2012-10-17", "Statement": [stmt]}


def assert_denied(ei, action, resource=None):
    msg = ei.value.response["Error"]["Message"]
    assert f"not authorized to perform: {action}" in msg, msg
    if resource:
        assert f"on resource: {resource}" in msg, msg
    assert "arn:aws:iam::" in msg and ":user/" in msg, msg


def test_root_key_may_do_everything(srv):
    c = root(srv)
    cid = c.create_keys_and_certificate(setAsActive=False)["certificateId"]
    c.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert c.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "ACTIVE"


def test_user_without_policy_is_denied(srv, tmp_path):
    _, c = user_with(srv, tmp_path)
    with expect_error(c, "UnauthorizedException", 401) as ei:
        c.list_certificates()
    assert_denied(ei, "iot:ListCertificates")


def test_allowed_action_and_nothing_else(srv, tmp_path):
    cid = root(srv).create_keys_and_certificate(setAsActive=False)["certificateId"]
    _, c = user_with(srv, tmp_path, allow(["iot:DescribeCertificate", "iot:ListCertificates"]))
    assert c.describe_certificate(certificateId=cid)["certificateDescription"]["certificateId"] == cid
    assert cid in [x["certificateId"] for x in c.list_certificates()["certificates"]]
    with expect_error(c, "UnauthorizedException", 401) as ei:
        c.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert_denied(ei, "iot:UpdateCertificate", cert_arn(cid, ACCOUNT))
    # The denial changed nothing.
    assert c.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "INACTIVE"


def test_wildcard_actions(srv, tmp_path):
    cid = root(srv).create_keys_and_certificate(setAsActive=False)["certificateId"]
    # Actions compare case-insensitively; `*` and `?` are wildcards.
    _, c = user_with(srv, tmp_path, allow(["iot:describe*", "IOT:List?ertificates"]))
    c.describe_certificate(certificateId=cid)
    c.list_certificates()
    with expect_error(c, "UnauthorizedException", 401):
        c.list_things()
    with expect_error(c, "UnauthorizedException", 401):
        c.create_keys_and_certificate()


def test_explicit_deny_wins_over_allow(srv, tmp_path):
    cid = root(srv).create_keys_and_certificate(setAsActive=False)["certificateId"]
    _, c = user_with(srv, tmp_path, allow("*"), allow("iot:UpdateCertificate", effect="Deny"))
    c.describe_certificate(certificateId=cid)
    with expect_error(c, "UnauthorizedException", 401) as ei:
        c.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert "explicit deny" in ei.value.response["Error"]["Message"]
    assert c.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "INACTIVE"


def test_resource_scoped_cancel_transfer(srv, tmp_path):
    """A user that may cancel the transfers of some certificates only."""
    r = root(srv)
    mine, theirs = (r.create_keys_and_certificate(setAsActive=False)["certificateId"] for _ in range(2))
    for cid in (mine, theirs):
        r.transfer_certificate(certificateId=cid, targetAwsAccount=OTHER)
    _, c = user_with(srv, tmp_path, {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:DescribeCertificate", "Resource": "*"},
            {"Effect": "Allow", "Action": "iot:CancelCertificateTransfer",
             "Resource": [f"arn:aws:iot:*:{ACCOUNT}:cert/{mine}"]},
        ],
    })
    c.cancel_certificate_transfer(certificateId=mine)
    assert c.describe_certificate(certificateId=mine)["certificateDescription"]["status"] == "INACTIVE"
    with expect_error(c, "UnauthorizedException", 401) as ei:
        c.cancel_certificate_transfer(certificateId=theirs)
    assert_denied(ei, "iot:CancelCertificateTransfer", cert_arn(theirs, ACCOUNT))
    assert c.describe_certificate(certificateId=theirs)["certificateDescription"]["status"] == "PENDING_TRANSFER"
    # The target account can still accept the transfer the user could not cancel.
    root(srv, OTHER).accept_certificate_transfer(certificateId=theirs)


def test_source_ip_condition(srv, tmp_path):
    local = allow("iot:ListCertificates", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})
    elsewhere = allow("iot:ListCertificates", Condition={"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}})
    _, ok = user_with(srv, tmp_path, local)
    _, no = user_with(srv, tmp_path, elsewhere)
    ok.list_certificates()
    with expect_error(no, "UnauthorizedException", 401):
        no.list_certificates()


def test_username_condition(srv, tmp_path):
    d = allow("iot:ListCertificates", Condition={"StringLike": {"aws:username": "user*"}})
    _, c = user_with(srv, tmp_path, d)
    c.list_certificates()
    d = allow("iot:ListCertificates", Condition={"StringEquals": {"aws:username": "somebody-else"}})
    _, c = user_with(srv, tmp_path, d)
    with expect_error(c, "UnauthorizedException", 401):
        c.list_certificates()


def test_attach_and_detach_apply_to_the_next_request(srv, tmp_path):
    name, c = user_with(srv, tmp_path)
    path = tmp_path / "list.json"
    path.write_text(json.dumps(allow("iot:ListCertificates")))
    srv.admin("policy", "create", "--account", ACCOUNT, "--name", f"{name}-late", "--document", str(path))
    with expect_error(c, "UnauthorizedException", 401):
        c.list_certificates()
    srv.admin("policy", "attach", "--account", ACCOUNT, "--name", f"{name}-late", "--user", name)
    c.list_certificates()
    srv.admin("policy", "detach", "--account", ACCOUNT, "--name", f"{name}-late", "--user", name)
    with expect_error(c, "UnauthorizedException", 401):
        c.list_certificates()


def test_disabled_key_is_refused_until_enabled(srv, tmp_path):
    name, _ = user_with(srv, tmp_path, allow("*"))
    for key in (make_key(srv), make_key(srv, ACCOUNT, name)):  # a root key and a user's key
        c = client_for(srv, key)
        c.list_certificates()
        srv.admin("access-key", "disable", "--id", key[0])
        with pytest.raises(ClientError) as ei:
            c.list_certificates()
        assert ei.value.response["Error"]["Code"] == "UnrecognizedClientException"
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        srv.admin("access-key", "enable", "--id", key[0])
        c.list_certificates()
        srv.admin("access-key", "delete", "--id", key[0])
        with pytest.raises(ClientError) as ei:
            c.list_certificates()
        assert ei.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_deleting_a_user_revokes_its_keys(srv, tmp_path):
    name, c = user_with(srv, tmp_path, allow("*"))
    c.list_certificates()
    srv.admin("user", "delete", "--account", ACCOUNT, "--name", name)
    with pytest.raises(ClientError) as ei:
        c.list_certificates()
    assert ei.value.response["Error"]["Code"] == "UnrecognizedClientException"
    users = srv.admin_json("user", "list", "--account", ACCOUNT, "--json")
    assert name not in [u["name"] for u in users]
    keys = srv.admin_json("access-key", "list", "--account", ACCOUNT, "--json")
    assert all(k["User"] != name for k in keys)
    assert all("SecretAccessKey" not in k for k in keys)


def test_admin_commands_validate(srv, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "allow", "Action": "*", "Resource": "*"}}))
    res = srv.admin("policy", "create", "--account", ACCOUNT, "--name", "bad", "--document", str(bad), expect_ok=False)
    assert res.returncode != 0 and "Effect" in res.stderr
    res = srv.admin("access-key", "create", "--account", ACCOUNT, "--user", "nobody", expect_ok=False)
    assert res.returncode != 0 and "nobody" in res.stderr
    res = srv.admin("user", "create", "--account", ACCOUNT, "--name", "bad name", expect_ok=False)
    assert res.returncode != 0
    name, _ = user_with(srv, tmp_path)
    res = srv.admin("user", "create", "--account", ACCOUNT, "--name", name, expect_ok=False)
    assert res.returncode != 0 and "already exists" in res.stderr
    good = tmp_path / "good.json"
    doc = allow("iot:ListCertificates")
    good.write_text(json.dumps(doc))
    srv.admin("policy", "create", "--account", ACCOUNT, "--name", "shown", "--document", str(good))
    assert json.loads(srv.admin("policy", "show", "--account", ACCOUNT, "--name", "shown").stdout) == doc
    assert "shown" in [p["name"] for p in srv.admin_json("policy", "list", "--account", ACCOUNT, "--json")]
    res = srv.admin("policy", "attach", "--account", ACCOUNT, "--name", "missing", "--user", name, expect_ok=False)
    assert res.returncode != 0
    # A user of one account is unknown in another.
    res = srv.admin("policy", "attach", "--account", OTHER, "--name", "shown", "--user", name, expect_ok=False)
    assert res.returncode != 0


def audit_rows(srv, *args):
    out = srv.admin("audit", "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_audit_rows_for_changes_and_denials(srv, tmp_path):
    cid = root(srv).create_keys_and_certificate(setAsActive=False)["certificateId"]
    name, c = user_with(srv, tmp_path, allow(["iot:DescribeCertificate", "iot:UpdateCertificate"]),
                        allow("iot:DeleteCertificate", effect="Deny"))
    rid = c.update_certificate(certificateId=cid, newStatus="ACTIVE")["ResponseMetadata"]["RequestId"]
    c.describe_certificate(certificateId=cid)
    with expect_error(c, "UnauthorizedException", 401):
        c.delete_certificate(certificateId=cid)
    with expect_error(c, "UnauthorizedException", 401):
        c.list_things()
    # A mutating call that fails (a missing certificate) is recorded as an error, with the code.
    with expect_error(c, "ResourceNotFoundException"):
        c.update_certificate(certificateId="ab" * 32, newStatus="INACTIVE")

    rows = audit_rows(srv, "--account", ACCOUNT, "--principal", name)
    by_action = {}
    for r in rows:
        by_action.setdefault(r["action"], []).append(r)
    arn = cert_arn(cid, ACCOUNT)
    [update_ok, update_err] = by_action["iot:UpdateCertificate"]
    assert update_ok["requestId"] == rid and update_ok["outcome"] == "allowed"
    assert update_ok["resource"] == arn and update_ok["errorCode"] is None
    assert update_ok["user"] == name and update_ok["accessKeyId"].startswith("AKIA")
    assert update_ok["sourceIp"] in ("127.0.0.1", "::1") and update_ok["dialect"] == "aws-iot"
    assert update_err["outcome"] == "error" and update_err["errorCode"] == "ResourceNotFoundException"
    [denied] = by_action["iot:DeleteCertificate"]
    assert denied["outcome"] == "denied" and denied["errorCode"] == "UnauthorizedException"
    assert denied["resource"] == arn
    # Denied reads are recorded; allowed reads are not.
    assert [r["outcome"] for r in by_action["iot:ListThings"]] == ["denied"]
    assert "iot:DescribeCertificate" not in by_action
    # Filters.
    assert [r["requestId"] for r in audit_rows(srv, "--resource", arn, "--action", "iot:UpdateCertificate")] == [rid]
    assert audit_rows(srv, "--principal", name, "--since", "2999-01-01T00:00:00Z") == []
    res = srv.admin("audit", "--since", "yesterday", expect_ok=False)
    assert res.returncode != 0 and "RFC 3339" in res.stderr


def test_audit_rows_of_root_changes(srv):
    r = root(srv)
    resp = r.create_keys_and_certificate(setAsActive=True)
    rows = [x for x in audit_rows(srv, "--account", ACCOUNT, "--action", "iot:CreateKeysAndCertificate")
            if x["requestId"] == resp["ResponseMetadata"]["RequestId"]]
    assert len(rows) == 1 and rows[0]["user"] is None and rows[0]["outcome"] == "allowed"


def test_export_import_carries_users_policies_keys_and_audit(srv, binary, tmp_path):
    cid = root(srv).create_keys_and_certificate(setAsActive=False)["certificateId"]
    name, _ = user_with(srv, tmp_path, allow("iot:DescribeCertificate"))
    key = make_key(srv, ACCOUNT, name)
    c = client_for(srv, key)
    with expect_error(c, "UnauthorizedException", 401):
        c.update_certificate(certificateId=cid, newStatus="ACTIVE")
    dump = tmp_path / "dump.jsonl"
    dump.write_text(srv.admin("export").stdout)
    copy = CertplaneServer(binary, tmp_path / "copy" / "data", dev=False)
    copy.data_dir.mkdir(parents=True, exist_ok=True)
    copy.admin("import", str(dump))
    # The CA keys travel sealed: the copy needs the master key made beside the original.
    if (srv.data_dir / "master.key").exists():
        shutil.copy(srv.data_dir / "master.key", copy.data_dir / "master.key")
    copy.start()
    try:
        moved = client_for(copy, key)
        assert moved.describe_certificate(certificateId=cid)["certificateDescription"]["certificateId"] == cid
        with expect_error(moved, "UnauthorizedException", 401):
            moved.update_certificate(certificateId=cid, newStatus="ACTIVE")
        denied = [r for r in audit_rows(copy, "--principal", name) if r["action"] == "iot:UpdateCertificate"]
        # The row made before the export, and the one the copy made.
        assert [r["outcome"] for r in denied] == ["denied", "denied"]
    finally:
        copy.stop()
