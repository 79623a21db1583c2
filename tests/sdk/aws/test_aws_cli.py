"""The aws CLI v1 (same venv as the tests) against the dev server (spec §5.3, §7.2, §13 #5, #11, #28)."""

from __future__ import annotations

import json

from aws_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    HEX64,
    cert_arn,
    run_aws,
)


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return json.loads(res.stdout) if res.stdout.strip() else None


def test_cli_create_and_describe(server, iot):
    out = ok(run_aws(server.url, ["create-keys-and-certificate", "--set-as-active"]))
    cid = out["certificateId"]
    assert HEX64.match(cid)
    assert out["certificateArn"] == cert_arn(cid)
    assert out["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PrivateKey" in out["keyPair"] and "PublicKey" in out["keyPair"]

    desc = ok(run_aws(server.url, ["describe-certificate", "--certificate-id", cid]))["certificateDescription"]
    assert desc["certificateId"] == cid
    assert desc["status"] == "ACTIVE"
    assert desc["ownedBy"] == ACCOUNT_A
    # CLI v1 prints timestamps exactly as received: epoch seconds numbers on the wire.
    for value in (desc["creationDate"], desc["lastModifiedDate"], desc["validity"]["notAfter"]):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), value
    assert iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "ACTIVE"


def test_cli_list_certificates_page_size_and_marker(server, iot):
    """awscli v1 quirk: for IoT ops whose own limit key is `pageSize`, an explicit `--page-size`
    counts as a manual paging argument and switches auto-pagination off (awscli
    customizations/paginate.py). So `--page-size 2` returns one page plus nextMarker, and the
    caller follows `--marker` itself."""
    created = {iot.create_keys_and_certificate()["certificateId"] for _ in range(5)}
    sizes, ids, marker = [], [], None
    for _ in range(6):
        args = ["list-certificates", "--page-size", "2"] + (["--marker", marker] if marker else [])
        out = ok(run_aws(server.url, args))
        sizes.append(len(out["certificates"]))
        ids.extend(c["certificateId"] for c in out["certificates"])
        marker = out.get("nextMarker")
        if not marker:
            break
    assert sizes == [2, 2, 1]
    assert len(ids) == 5 and set(ids) == created


def test_cli_list_certificates_auto_paginates(server, iot):
    """Without --page-size the CLI follows nextMarker itself (default page size is 25, so 27
    certificates need at least two pages) and prints one merged list without nextMarker."""
    from aws_x509 import make_csr

    csr, _ = make_csr()
    created = {iot.create_certificate_from_csr(certificateSigningRequest=csr)["certificateId"]
               for _ in range(27)}
    out = ok(run_aws(server.url, ["list-certificates"]))
    ids = [c["certificateId"] for c in out["certificates"]]
    assert len(ids) == 27 and set(ids) == created
    assert "nextMarker" not in out

    first = ok(run_aws(server.url, ["list-certificates", "--max-items", "3"]))
    assert len(first["certificates"]) == 3 and first.get("NextToken")
    rest = ok(run_aws(server.url, ["list-certificates", "--starting-token", first["NextToken"]]))
    got = [c["certificateId"] for c in first["certificates"] + rest["certificates"]]
    assert len(got) == 27 and set(got) == created


def test_cli_transfer_and_accept(server, iot, iot_b):
    cid = iot.create_keys_and_certificate()["certificateId"]
    out = ok(run_aws(server.url, ["transfer-certificate", "--certificate-id", cid,
                                  "--target-aws-account", ACCOUNT_B, "--transfer-message", "via cli"]))
    assert out["transferredCertificateArn"].endswith(f":cert/{cid}")
    out = ok(run_aws(server.url, ["list-outgoing-certificates"]))
    assert [(o["certificateId"], o["transferredTo"]) for o in out["outgoingCertificates"]] == [(cid, ACCOUNT_B)]

    res = run_aws(server.url, ["accept-certificate-transfer", "--certificate-id", cid, "--set-as-active"],
                  access_key=ACCOUNT_B)
    assert ok(res) is None, "AcceptCertificateTransfer has no output"
    desc = iot_b.describe_certificate(certificateId=cid)["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["ownedBy"] == ACCOUNT_B

    res = run_aws(server.url, ["accept-certificate-transfer", "--certificate-id", cid], access_key=ACCOUNT_B)
    assert res.returncode == 255
    assert "An error occurred (TransferAlreadyCompletedException)" in res.stderr


def test_cli_reject_and_cancel(server, iot):
    cid = iot.create_keys_and_certificate()["certificateId"]
    iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B)
    res = run_aws(server.url, ["reject-certificate-transfer", "--certificate-id", cid, "--reject-reason", "nope"],
                  access_key=ACCOUNT_B)
    assert ok(res) is None
    desc = iot.describe_certificate(certificateId=cid)["certificateDescription"]
    assert desc["status"] == "INACTIVE" and desc["transferData"]["rejectReason"] == "nope"
    res = run_aws(server.url, ["cancel-certificate-transfer", "--certificate-id", cid])
    assert res.returncode == 255
    assert "An error occurred (TransferAlreadyCompletedException)" in res.stderr


def test_cli_errors_exit_255(server, iot):
    res = run_aws(server.url, ["describe-certificate", "--certificate-id", "ab" * 32])
    assert res.returncode == 255, (res.returncode, res.stdout, res.stderr)
    assert "An error occurred (ResourceNotFoundException)" in res.stderr
    assert "DescribeCertificate" in res.stderr

    cid = iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    res = run_aws(server.url, ["delete-certificate", "--certificate-id", cid])
    assert res.returncode == 255
    assert "An error occurred (CertificateStateException)" in res.stderr
