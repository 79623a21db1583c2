"""Things, policies and their attachments to certificates (spec §3.1, §8.3, §13 #26-27)."""

from __future__ import annotations

import datetime as dt
import json

from aws_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    REGION,
    expect_4xx,
    expect_error,
    status_of,
)

POLICY_DOC = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["iot:Connect", "iot:Publish"], "Resource": "*"}],
})


def thing_arn(name, account=ACCOUNT_A, region=REGION):
    return f"arn:aws:iot:{region}:{account}:thing/{name}"


def policy_arn(name, account=ACCOUNT_A, region=REGION):
    return f"arn:aws:iot:{region}:{account}:policy/{name}"


def new_cert(iot):
    resp = iot.create_keys_and_certificate()
    return resp["certificateId"], resp["certificateArn"]


# --- Things ---------------------------------------------------------------------------------------

def test_thing_lifecycle(iot):
    resp = iot.create_thing(thingName="thermo-1", attributePayload={"attributes": {"room": "kitchen"}})
    assert resp["thingName"] == "thermo-1"
    assert resp["thingArn"] == thing_arn("thermo-1")
    assert isinstance(resp["thingId"], str) and resp["thingId"]

    desc = iot.describe_thing(thingName="thermo-1")
    assert desc["thingName"] == "thermo-1"
    assert desc["thingArn"] == thing_arn("thermo-1")
    assert desc["thingId"] == resp["thingId"]
    assert desc["attributes"] == {"room": "kitchen"}
    assert isinstance(desc["version"], int) and desc["version"] >= 1

    iot.create_thing(thingName="thermo-2")
    things = {t["thingName"]: t for t in iot.list_things()["things"]}
    assert set(things) == {"thermo-1", "thermo-2"}
    assert things["thermo-1"]["thingArn"] == thing_arn("thermo-1")
    assert things["thermo-1"]["attributes"] == {"room": "kitchen"}

    iot.delete_thing(thingName="thermo-1")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_thing(thingName="thermo-1")
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["thermo-2"]


def test_create_thing_is_idempotent_for_same_config(iot):
    first = iot.create_thing(thingName="t", attributePayload={"attributes": {"a": "1"}})
    again = iot.create_thing(thingName="t", attributePayload={"attributes": {"a": "1"}})
    assert again["thingId"] == first["thingId"]
    with expect_error(iot, "ResourceAlreadyExistsException"):
        iot.create_thing(thingName="t", attributePayload={"attributes": {"a": "2"}})
    assert iot.describe_thing(thingName="t")["attributes"] == {"a": "1"}


def test_things_are_per_account(iot, iot_b):
    iot.create_thing(thingName="mine")
    assert iot_b.list_things()["things"] == []
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.describe_thing(thingName="mine")


def test_delete_thing_with_principal_attached_is_refused(iot):
    _, arn = new_cert(iot)
    iot.create_thing(thingName="busy")
    iot.attach_thing_principal(thingName="busy", principal=arn)
    with expect_4xx():
        iot.delete_thing(thingName="busy")
    assert iot.describe_thing(thingName="busy")["thingName"] == "busy"


# --- Policies ----------------------------------------------------------------------------------------

def test_policy_lifecycle(iot):
    resp = iot.create_policy(policyName="dev-policy", policyDocument=POLICY_DOC)
    assert resp["policyName"] == "dev-policy"
    assert resp["policyArn"] == policy_arn("dev-policy")
    assert json.loads(resp["policyDocument"]) == json.loads(POLICY_DOC)
    assert resp["policyVersionId"] == "1"

    got = iot.get_policy(policyName="dev-policy")
    assert got["policyName"] == "dev-policy"
    assert got["policyArn"] == policy_arn("dev-policy")
    assert json.loads(got["policyDocument"]) == json.loads(POLICY_DOC)
    assert got["defaultVersionId"] == "1"
    assert isinstance(got["creationDate"], dt.datetime)
    assert isinstance(got["lastModifiedDate"], dt.datetime)

    iot.create_policy(policyName="other", policyDocument=POLICY_DOC)
    policies = iot.list_policies()["policies"]
    assert {p["policyName"]: p["policyArn"] for p in policies} == {
        "dev-policy": policy_arn("dev-policy"), "other": policy_arn("other")}

    iot.delete_policy(policyName="dev-policy")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.get_policy(policyName="dev-policy")
    assert [p["policyName"] for p in iot.list_policies()["policies"]] == ["other"]


def test_create_duplicate_policy(iot):
    iot.create_policy(policyName="dup", policyDocument=POLICY_DOC)
    with expect_error(iot, "ResourceAlreadyExistsException"):
        iot.create_policy(policyName="dup", policyDocument=POLICY_DOC)


def test_create_malformed_policy(iot):
    with expect_error(iot, "MalformedPolicyException"):
        iot.create_policy(policyName="bad", policyDocument="{this is not json")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.get_policy(policyName="bad")


def test_delete_attached_policy_conflicts(iot):
    _, arn = new_cert(iot)
    iot.create_policy(policyName="held", policyDocument=POLICY_DOC)
    iot.attach_policy(policyName="held", target=arn)
    with expect_error(iot, "DeleteConflictException", 409):
        iot.delete_policy(policyName="held")
    iot.detach_policy(policyName="held", target=arn)
    iot.delete_policy(policyName="held")


def test_delete_unknown_policy(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.delete_policy(policyName="nope")


# --- AttachPolicy / DetachPolicy / ListAttachedPolicies / ListTargetsForPolicy --------------------------

def test_attach_and_detach_policy(iot):
    cid, arn = new_cert(iot)
    iot.create_policy(policyName="p1", policyDocument=POLICY_DOC)
    iot.create_policy(policyName="p2", policyDocument=POLICY_DOC)
    assert iot.list_attached_policies(target=arn)["policies"] == []

    iot.attach_policy(policyName="p1", target=arn)
    iot.attach_policy(policyName="p1", target=arn)  # attaching twice is a no-op
    attached = iot.list_attached_policies(target=arn)["policies"]
    assert attached == [{"policyName": "p1", "policyArn": policy_arn("p1")}]
    assert iot.list_targets_for_policy(policyName="p1")["targets"] == [arn]
    assert iot.list_targets_for_policy(policyName="p2")["targets"] == []

    iot.attach_policy(policyName="p2", target=arn)
    names = sorted(p["policyName"] for p in iot.get_paginator("list_attached_policies").paginate(
        target=arn, PaginationConfig={"PageSize": 1}).build_full_result()["policies"])
    assert names == ["p1", "p2"]

    iot.detach_policy(policyName="p1", target=arn)
    assert [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]] == ["p2"]
    assert iot.list_targets_for_policy(policyName="p1")["targets"] == []
    assert status_of(iot, cid) == "INACTIVE"


def test_attach_unknown_policy(iot):
    _, arn = new_cert(iot)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.attach_policy(policyName="ghost", target=arn)


def test_list_targets_for_unknown_policy(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_targets_for_policy(policyName="ghost")


# --- Deprecated principal-policy operations -------------------------------------------------------------

def test_deprecated_principal_policy_operations(iot):
    _, arn = new_cert(iot)
    iot.create_policy(policyName="legacy", policyDocument=POLICY_DOC)
    iot.attach_principal_policy(policyName="legacy", principal=arn)

    pols = iot.list_principal_policies(principal=arn)["policies"]
    assert pols == [{"policyName": "legacy", "policyArn": policy_arn("legacy")}]
    assert iot.list_policy_principals(policyName="legacy")["principals"] == [arn]
    # same relation as AttachPolicy
    assert [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]] == ["legacy"]

    iot.detach_principal_policy(policyName="legacy", principal=arn)
    assert iot.list_principal_policies(principal=arn)["policies"] == []
    assert iot.list_policy_principals(policyName="legacy")["principals"] == []
    assert iot.list_attached_policies(target=arn)["policies"] == []


def test_attach_policy_visible_through_deprecated_listing(iot):
    _, arn = new_cert(iot)
    iot.create_policy(policyName="modern", policyDocument=POLICY_DOC)
    iot.attach_policy(policyName="modern", target=arn)
    assert [p["policyName"] for p in iot.list_principal_policies(principal=arn)["policies"]] == ["modern"]
    assert iot.list_policy_principals(policyName="modern")["principals"] == [arn]


def test_attach_principal_policy_unknown_policy(iot):
    _, arn = new_cert(iot)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.attach_principal_policy(policyName="ghost", principal=arn)


# --- Thing principals ---------------------------------------------------------------------------------

def test_attach_and_detach_thing_principal(iot):
    cid, arn = new_cert(iot)
    iot.create_thing(thingName="car-1")
    iot.create_thing(thingName="car-2")
    resp = iot.attach_thing_principal(thingName="car-1", principal=arn)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    iot.attach_thing_principal(thingName="car-2", principal=arn)

    assert sorted(iot.list_principal_things(principal=arn)["things"]) == ["car-1", "car-2"]
    assert iot.list_thing_principals(thingName="car-1")["principals"] == [arn]
    paged = iot.get_paginator("list_principal_things").paginate(
        principal=arn, PaginationConfig={"PageSize": 1}).build_full_result()["things"]
    assert sorted(paged) == ["car-1", "car-2"]

    iot.detach_thing_principal(thingName="car-1", principal=arn)
    assert iot.list_principal_things(principal=arn)["things"] == ["car-2"]
    assert iot.list_thing_principals(thingName="car-1")["principals"] == []

    with expect_error(iot, "ResourceNotFoundException"):
        iot.detach_thing_principal(thingName="car-1", principal=arn)


def test_attach_thing_principal_twice_is_noop(iot):
    _, arn = new_cert(iot)
    iot.create_thing(thingName="t")
    iot.attach_thing_principal(thingName="t", principal=arn)
    iot.attach_thing_principal(thingName="t", principal=arn)
    assert iot.list_thing_principals(thingName="t")["principals"] == [arn]


def test_attach_thing_principal_unknown_thing(iot):
    _, arn = new_cert(iot)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.attach_thing_principal(thingName="ghost", principal=arn)


def test_list_thing_principals_unknown_thing(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_thing_principals(thingName="ghost")


def test_attachments_do_not_leak_across_accounts(iot, iot_b):
    _, arn = new_cert(iot)
    iot.create_thing(thingName="shared-name")
    iot.attach_thing_principal(thingName="shared-name", principal=arn)
    iot_b.create_thing(thingName="shared-name")
    assert iot_b.list_thing_principals(thingName="shared-name")["principals"] == []


# --- Attachments and transfers; principal ARNs; error codes ---------------------------------------

def test_nothing_attaches_to_a_certificate_pending_transfer(iot):
    """TransferCertificate needs a certificate with nothing attached; attaching while the
    transfer is pending would hand the new owner the old owner's attachments."""
    cert_id, arn = new_cert(iot)
    iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
    iot.create_policy(policyName="late", policyDocument=POLICY_DOC)
    iot.create_thing(thingName="late-thing")
    iot.transfer_certificate(certificateId=cert_id, targetAwsAccount=ACCOUNT_B)
    with expect_error(iot, "InvalidRequestException", 400):
        iot.attach_policy(policyName="late", target=arn)
    with expect_error(iot, "InvalidRequestException", 400):
        iot.attach_thing_principal(thingName="late-thing", principal=arn)
    assert iot.list_targets_for_policy(policyName="late")["targets"] == []
    assert iot.list_thing_principals(thingName="late-thing")["principals"] == []
    # Once the transfer is cancelled the certificate is the owner's to attach again.
    iot.cancel_certificate_transfer(certificateId=cert_id)
    iot.attach_policy(policyName="late", target=arn)
    iot.attach_thing_principal(thingName="late-thing", principal=arn)
    assert iot.list_targets_for_policy(policyName="late")["targets"] == [arn]


def test_certificate_arn_of_another_account_or_region_is_not_found(iot):
    cert_id, arn = new_cert(iot)
    iot.create_policy(policyName="scoped", policyDocument=POLICY_DOC)
    iot.create_thing(thingName="scoped-thing")
    foreign = [arn.replace(f":{ACCOUNT_A}:", ":999999999999:"),
               arn.replace(f":{REGION}:", ":eu-west-3:")]
    for other in foreign:
        assert other != arn
        with expect_error(iot, "ResourceNotFoundException", 404):
            iot.attach_policy(policyName="scoped", target=other)
        with expect_error(iot, "ResourceNotFoundException", 404):
            iot.attach_thing_principal(thingName="scoped-thing", principal=other)
    assert iot.list_targets_for_policy(policyName="scoped")["targets"] == []


def test_create_policy_bad_name_is_invalid_request_not_malformed(iot):
    with expect_error(iot, "InvalidRequestException", 400):
        iot.create_policy(policyName="x" * 129, policyDocument=POLICY_DOC)
    with expect_error(iot, "InvalidRequestException", 400):
        iot.create_policy(policyName="bad name!", policyDocument=POLICY_DOC)
    with expect_error(iot, "MalformedPolicyException", 400):
        iot.create_policy(policyName="good-name", policyDocument="[1, 2]")


def test_duplicate_thing_name_with_colons_reports_the_whole_name(iot):
    iot.create_thing(thingName="site:a:b", attributePayload={"attributes": {"k": "1"}})
    try:
        iot.create_thing(thingName="site:a:b", attributePayload={"attributes": {"k": "2"}})
        raise AssertionError("a different thing with the same name must conflict")
    except iot.exceptions.ResourceAlreadyExistsException as e:
        assert e.response["resourceId"] == "site:a:b", e.response
        assert e.response["resourceArn"] == thing_arn("site:a:b"), e.response


def test_thing_inputs_follow_the_model_patterns(iot):
    """Patterns botocore does not check client-side: 400 InvalidRequestException, nothing made."""
    bad_calls = [
        lambda: iot.create_thing(thingName="p1", attributePayload={"attributes": {"bad key": "v"}}),
        lambda: iot.create_thing(thingName="p1", attributePayload={"attributes": {"k": "has space"}}),
        lambda: iot.create_thing(thingName="p1", billingGroupName="no spaces here"),
        lambda: iot.list_things(attributeName="bad name", attributeValue="v"),
        lambda: iot.list_things(attributeName="k", attributeValue="a b"),
        lambda: iot.list_things(thingTypeName="bad type"),
        lambda: iot.create_policy(policyName="tagged", policyDocument=POLICY_DOC,
                                  tags=[{"Key": "bad!key", "Value": "v"}]),
    ]
    for call in bad_calls:
        with expect_error(iot, "InvalidRequestException", 400):
            call()
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_thing(thingName="p1")
    iot.create_thing(thingName="p1", attributePayload={"attributes": {"site/room:1": "a=[b],c@d#e"}})
    assert [t["thingName"] for t in iot.list_things(attributeName="site/room:1",
                                                      attributeValue="a=[b],c@d#e")["things"]] == ["p1"]
