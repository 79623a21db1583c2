"""Policy versions: CreatePolicyVersion, GetPolicyVersion, ListPolicyVersions,
SetDefaultPolicyVersion, DeletePolicyVersion, and the default version GetPolicy answers."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from aws_harness import ACCOUNT_A, REGION, error_code, expect_error
from certplane_server import race_threads


def doc(n):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                                      "Resource": f"arn:aws:iot:{REGION}:{ACCOUNT_A}:client/{n}"}]})


def test_versions_lifecycle(iot):
    created = iot.create_policy(policyName="p", policyDocument=doc(1))
    assert created["policyVersionId"] == "1"
    v2 = iot.create_policy_version(policyName="p", policyDocument=doc(2))
    assert v2["policyVersionId"] == "2" and v2["isDefaultVersion"] is False
    assert v2["policyArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT_A}:policy/p"
    assert json.loads(v2["policyDocument"]) == json.loads(doc(2))
    assert iot.get_policy(policyName="p")["defaultVersionId"] == "1"

    v3 = iot.create_policy_version(policyName="p", policyDocument=doc(3), setAsDefault=True)
    assert v3["policyVersionId"] == "3" and v3["isDefaultVersion"] is True
    got = iot.get_policy(policyName="p")
    assert got["defaultVersionId"] == "3" and got["policyDocument"] == doc(3)

    one = iot.get_policy_version(policyName="p", policyVersionId="2")
    assert one["policyName"] == "p" and one["policyDocument"] == doc(2)
    assert one["isDefaultVersion"] is False and one["creationDate"] and one["generationId"]

    listed = iot.list_policy_versions(policyName="p")["policyVersions"]
    assert [v["versionId"] for v in listed] == ["1", "2", "3"]
    assert [v["isDefaultVersion"] for v in listed] == [False, False, True]

    iot.set_default_policy_version(policyName="p", policyVersionId="1")
    assert iot.get_policy(policyName="p")["policyDocument"] == doc(1)

    with expect_error(iot, "DeleteConflictException"):
        iot.delete_policy_version(policyName="p", policyVersionId="1")
    with expect_error(iot, "DeleteConflictException"):
        iot.delete_policy(policyName="p")
    iot.delete_policy_version(policyName="p", policyVersionId="2")
    iot.delete_policy_version(policyName="p", policyVersionId="3")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.get_policy_version(policyName="p", policyVersionId="3")
    # Ids are never reused.
    assert iot.create_policy_version(policyName="p", policyDocument=doc(4))["policyVersionId"] == "4"
    iot.delete_policy_version(policyName="p", policyVersionId="4")
    iot.delete_policy(policyName="p")


def test_at_most_five_versions(iot):
    iot.create_policy(policyName="p", policyDocument=doc(1))
    for n in range(2, 6):
        iot.create_policy_version(policyName="p", policyDocument=doc(n))
    with expect_error(iot, "VersionsLimitExceededException") as ei:
        iot.create_policy_version(policyName="p", policyDocument=doc(6))
    assert "maximum number of versions (5)" in ei.value.response["Error"]["Message"]
    assert len(iot.list_policy_versions(policyName="p")["policyVersions"]) == 5


def test_version_errors(iot, iot_b):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.create_policy_version(policyName="nope", policyDocument=doc(1))
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_policy_versions(policyName="nope")
    iot.create_policy(policyName="p", policyDocument=doc(1))
    with expect_error(iot, "MalformedPolicyException"):
        iot.create_policy_version(policyName="p", policyDocument="not json")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.set_default_policy_version(policyName="p", policyVersionId="9")
    with expect_error(iot, "InvalidRequestException"):
        iot.get_policy_version(policyName="p", policyVersionId="x1")
    # Another account sees nothing.
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.get_policy_version(policyName="p", policyVersionId="1")


def test_racing_version_creators_never_exceed_five(iot):
    iot.create_policy(policyName="p", policyDocument=doc(1))
    results = race_threads(8, lambda i: iot.create_policy_version(
        policyName="p", policyDocument=doc(i))["policyVersionId"], ClientError, error_code)
    wins = [r[1] for r in results if r[0] == "ok"]
    losses = [r[1] for r in results if r[0] == "err"]
    assert len(wins) == 4 and sorted(wins) == ["2", "3", "4", "5"], results
    assert losses == ["VersionsLimitExceededException"] * 4, results
