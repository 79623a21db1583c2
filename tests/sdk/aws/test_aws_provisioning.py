"""Provisioning templates, their versions, and RegisterThing (boto3 and the aws CLI)."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from aws_harness import ACCOUNT_A, REGION, error_code, expect_error, run_aws
from aws_x509 import make_csr
from certplane_server import race_threads

ROLE = f"arn:aws:iam::{ACCOUNT_A}:role/provisioning"
POLICY_DOC = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})


def arn(kind, name):
    return f"arn:aws:iot:{REGION}:{ACCOUNT_A}:{kind}/{name}"


def body(resources, parameters=None):
    return json.dumps({"Parameters": parameters or {}, "Resources": resources})


SIMPLE = body({"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}}},
              {"ThingName": {"Type": "String"}})


def test_template_lifecycle_and_versions(iot):
    made = iot.create_provisioning_template(templateName="fleet", templateBody=SIMPLE,
                                            provisioningRoleArn=ROLE, description="d",
                                            tags=[{"Key": "k", "Value": "v"}])
    assert made["templateArn"] == arn("provisioningtemplate", "fleet")
    assert made["templateName"] == "fleet" and made["defaultVersionId"] == 1
    with expect_error(iot, "ResourceAlreadyExistsException"):
        iot.create_provisioning_template(templateName="fleet", templateBody=SIMPLE,
                                         provisioningRoleArn=ROLE)
    with expect_error(iot, "InvalidRequestException"):
        iot.create_provisioning_template(templateName="bad", templateBody="{not json",
                                         provisioningRoleArn=ROLE)
    with expect_error(iot, "InvalidRequestException"):
        iot.create_provisioning_template(templateName="bad", provisioningRoleArn=ROLE,
                                         templateBody=body({"r": {"Type": "AWS::IAM::Role"}}))
    d = iot.describe_provisioning_template(templateName="fleet")
    assert d["templateBody"] == SIMPLE and d["defaultVersionId"] == 1
    assert d["enabled"] is False and d["type"] == "FLEET_PROVISIONING"
    assert d["provisioningRoleArn"] == ROLE and d["description"] == "d"
    assert d["creationDate"] and d["lastModifiedDate"]
    assert "preProvisioningHook" not in d
    assert iot.list_tags_for_resource(resourceArn=made["templateArn"])["tags"] == [{"Key": "k", "Value": "v"}]

    iot.update_provisioning_template(templateName="fleet", enabled=True, description="e",
                                     preProvisioningHook={"targetArn": "arn:aws:lambda:us-east-1:1:function:f"})
    d = iot.describe_provisioning_template(templateName="fleet")
    assert d["enabled"] is True and d["description"] == "e"
    assert d["preProvisioningHook"] == {"targetArn": "arn:aws:lambda:us-east-1:1:function:f"}
    iot.update_provisioning_template(templateName="fleet", removePreProvisioningHook=True)
    assert "preProvisioningHook" not in iot.describe_provisioning_template(templateName="fleet")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_provisioning_template(templateName="nope", enabled=True)

    v2_body = SIMPLE.replace("thing", "device")
    v2 = iot.create_provisioning_template_version(templateName="fleet", templateBody=v2_body,
                                                  setAsDefault=True)
    assert v2["versionId"] == 2 and v2["isDefaultVersion"] is True
    assert v2["templateArn"] == made["templateArn"]
    assert iot.describe_provisioning_template(templateName="fleet")["templateBody"] == v2_body
    v1 = iot.describe_provisioning_template_version(templateName="fleet", versionId=1)
    assert v1["templateBody"] == SIMPLE and v1["isDefaultVersion"] is False and v1["creationDate"]
    for _ in range(3):
        iot.create_provisioning_template_version(templateName="fleet", templateBody=SIMPLE)
    with expect_error(iot, "VersionsLimitExceededException"):
        iot.create_provisioning_template_version(templateName="fleet", templateBody=SIMPLE)
    versions = iot.list_provisioning_template_versions(templateName="fleet")["versions"]
    assert [(v["versionId"], v["isDefaultVersion"]) for v in versions] == [
        (1, False), (2, True), (3, False), (4, False), (5, False)]
    page = iot.list_provisioning_template_versions(templateName="fleet", maxResults=2)
    assert [v["versionId"] for v in page["versions"]] == [1, 2] and page["nextToken"]
    with expect_error(iot, "DeleteConflictException"):
        iot.delete_provisioning_template_version(templateName="fleet", versionId=2)
    iot.delete_provisioning_template_version(templateName="fleet", versionId=5)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_provisioning_template_version(templateName="fleet", versionId=5)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_provisioning_template(templateName="fleet", defaultVersionId=5)
    iot.update_provisioning_template(templateName="fleet", defaultVersionId=1)
    assert iot.describe_provisioning_template(templateName="fleet")["defaultVersionId"] == 1
    # Ids are never reused after a delete.
    assert iot.create_provisioning_template_version(templateName="fleet", templateBody=SIMPLE)["versionId"] == 6

    iot.create_provisioning_template(templateName="jitp", templateBody=SIMPLE,
                                     provisioningRoleArn=ROLE, type="JITP", enabled=True)
    listed = iot.list_provisioning_templates()["templates"]
    assert [(t["templateName"], t["type"], t["enabled"]) for t in listed] == [
        ("fleet", "FLEET_PROVISIONING", True), ("jitp", "JITP", True)]
    assert listed[0]["templateArn"] == made["templateArn"] and listed[0]["description"] == "e"
    iot.delete_provisioning_template(templateName="fleet")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_provisioning_template(templateName="fleet")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.delete_provisioning_template(templateName="fleet")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_provisioning_template_versions(templateName="fleet")
    assert [t["templateName"] for t in iot.list_provisioning_templates()["templates"]] == ["jitp"]


def test_template_names_are_checked(iot_novalidate):
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.create_provisioning_template(templateName="has space", templateBody=SIMPLE,
                                                    provisioningRoleArn=ROLE)
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.create_provisioning_template(templateName="x" * 37, templateBody=SIMPLE,
                                                    provisioningRoleArn=ROLE)


FULL = body({
    "thing": {"Type": "AWS::IoT::Thing", "Properties": {
        "ThingName": {"Ref": "ThingName"},
        "ThingTypeName": "sensor",
        "AttributePayload": {"serial": {"Ref": "Serial"}, "loc": {"Ref": "Location"}},
        "ThingGroups": ["fleet", {"Fn::Join": ["-", ["site", {"Ref": "Location"}]]}],
    }},
    "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
        "CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"}},
    "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": POLICY_DOC}},
}, {"ThingName": {"Type": "String"}, "Serial": {"Type": "String"},
    "Location": {"Type": "String", "Default": "WA"}, "CSR": {"Type": "String"}})


def setup_registry(iot):
    iot.create_thing_type(thingTypeName="sensor")
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="site-WA")
    iot.create_thing_group(thingGroupName="site-NY")


def test_register_thing_makes_and_links_everything(iot):
    setup_registry(iot)
    csr, _ = make_csr()
    out = iot.register_thing(templateBody=FULL,
                             parameters={"ThingName": "dev1", "Serial": "123", "CSR": csr})
    assert out["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    arns = out["resourceArns"]
    assert set(arns) == {"thing", "certificate", "policy"}
    assert arns["thing"] == arn("thing", "dev1")
    cert_id = arns["certificate"].rsplit("/", 1)[1]
    policy_name = arns["policy"].rsplit("/", 1)[1]
    assert len(policy_name) == 40
    thing = iot.describe_thing(thingName="dev1")
    assert thing["thingTypeName"] == "sensor"
    assert thing["attributes"] == {"serial": "123", "loc": "WA"}
    assert sorted(g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="dev1")["thingGroups"]) == [
        "fleet", "site-WA"]
    desc = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["certificatePem"] == out["certificatePem"]
    assert iot.list_thing_principals(thingName="dev1")["principals"] == [arns["certificate"]]
    assert iot.list_attached_policies(target=arns["certificate"])["policies"] == [
        {"policyName": policy_name, "policyArn": arns["policy"]}]
    assert json.loads(iot.get_policy(policyName=policy_name)["policyDocument"]) == json.loads(POLICY_DOC)

    # A second device from the same template: the same document names the same policy,
    # which is reused; the thing is new.
    csr2, _ = make_csr()
    out2 = iot.register_thing(templateBody=FULL,
                              parameters={"ThingName": "dev2", "Serial": "9", "CSR": csr2, "Location": "NY"})
    assert out2["resourceArns"]["policy"] == arns["policy"]
    assert out2["resourceArns"]["certificate"] != arns["certificate"]
    assert iot.describe_thing(thingName="dev2")["attributes"] == {"serial": "9", "loc": "NY"}
    assert [p["policyName"] for p in iot.list_policies()["policies"]] == [policy_name]


def test_register_thing_with_existing_certificate_and_policy(iot):
    iot.create_policy(policyName="existing", policyDocument=POLICY_DOC)
    cert = iot.create_keys_and_certificate(setAsActive=False)
    iot.create_thing(thingName="already", attributePayload={"attributes": {"a": "1"}})
    template = body({
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": "already", "AttributePayload": {"a": "2"}}},
        "cert": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
        "pol": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "existing"}},
    })
    out = iot.register_thing(templateBody=template,
                             parameters={"AWS::IoT::Certificate::Id": cert["certificateId"]})
    assert out["certificatePem"] == cert["certificatePem"]
    assert out["resourceArns"] == {"thing": arn("thing", "already"), "cert": cert["certificateArn"],
                                   "pol": arn("policy", "existing")}
    # An existing thing is used as it is (AWS's default, DO_NOTHING).
    assert iot.describe_thing(thingName="already")["attributes"] == {"a": "1"}
    status = iot.describe_certificate(certificateId=cert["certificateId"])["certificateDescription"]["status"]
    assert status == "ACTIVE"
    assert iot.list_thing_principals(thingName="already")["principals"] == [cert["certificateArn"]]
    assert [p["policyName"] for p in iot.list_attached_policies(target=cert["certificateArn"])["policies"]] == [
        "existing"]
    # Registering again changes nothing and succeeds.
    again = iot.register_thing(templateBody=template,
                               parameters={"AWS::IoT::Certificate::Id": cert["certificateId"]})
    assert again["resourceArns"] == out["resourceArns"]
    assert len(iot.list_thing_principals(thingName="already")["principals"]) == 1


def assert_nothing_left(iot, policies_before):
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == []
    assert [p["policyName"] for p in iot.list_policies()["policies"]] == policies_before


def test_register_thing_is_all_or_nothing(iot):
    """A template whose last resource fails leaves nothing of the earlier ones behind."""
    setup_registry(iot)
    csr, _ = make_csr()
    params = {"ThingName": "dev1", "Serial": "1", "CSR": csr}
    last_fails = json.loads(FULL)
    last_fails["Resources"]["policy"] = {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "missing"}}
    with expect_error(iot, "ResourceRegistrationFailureException"):
        iot.register_thing(templateBody=json.dumps(last_fails), parameters=params)
    assert_nothing_left(iot, [])
    # A new policy made by the same template does not survive either.
    two_policies = json.loads(FULL)
    two_policies["Resources"]["zz"] = {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "missing"}}
    with expect_error(iot, "ResourceRegistrationFailureException"):
        iot.register_thing(templateBody=json.dumps(two_policies), parameters=params)
    assert_nothing_left(iot, [])
    # A thing group that does not exist, a deprecated thing type, a bad CSR, a missing
    # certificate id: the same.
    bad_group = json.loads(FULL)
    bad_group["Resources"]["thing"]["Properties"]["ThingGroups"] = ["fleet", "ghost"]
    with expect_error(iot, "ResourceRegistrationFailureException"):
        iot.register_thing(templateBody=json.dumps(bad_group), parameters=params)
    assert_nothing_left(iot, [])
    iot.deprecate_thing_type(thingTypeName="sensor")
    with expect_error(iot, "InvalidRequestException"):
        iot.register_thing(templateBody=FULL, parameters=params)
    assert_nothing_left(iot, [])
    iot.deprecate_thing_type(thingTypeName="sensor", undoDeprecate=True)
    with expect_error(iot, "InvalidRequestException"):
        iot.register_thing(templateBody=FULL, parameters={**params, "CSR": "not a csr"})
    assert_nothing_left(iot, [])
    by_id = json.loads(FULL)
    by_id["Resources"]["certificate"]["Properties"] = {"CertificateId": "a" * 64}
    with expect_error(iot, "ResourceRegistrationFailureException"):
        iot.register_thing(templateBody=json.dumps(by_id), parameters=params)
    assert_nothing_left(iot, [])
    # And the template still works once its resources exist.
    iot.register_thing(templateBody=FULL, parameters=params)
    assert iot.list_things()["things"][0]["thingName"] == "dev1"


def test_register_thing_template_errors(iot):
    with expect_error(iot, "InvalidRequestException"):
        iot.register_thing(templateBody="{")
    with expect_error(iot, "InvalidRequestException"):
        iot.register_thing(templateBody=SIMPLE)  # ThingName has no value and no default
    with expect_error(iot, "InvalidRequestException"):
        iot.register_thing(templateBody=body({"t": {"Type": "AWS::IoT::Thing",
                                                    "Properties": {"ThingName": "bad name"}}}))
    with expect_error(iot, "InvalidRequestException"):
        iot.register_thing(templateBody=body({"t": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Fn::If": ["c", "a", "b"]}}}}))
    # Fn::Sub with a parameter; no certificate, so no certificatePem.
    out = iot.register_thing(templateBody=body(
        {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::Sub": "dev-${N}"}}}},
        {"N": {"Type": "String", "Default": "7"}}))
    assert "certificatePem" not in out and out["resourceArns"] == {"t": arn("thing", "dev-7")}


def test_racing_register_and_group_delete_leave_no_member_of_a_deleted_group(iot):
    """RegisterThing puts the new thing in a group while another client deletes that group:
    either the registration wins (thing in the group, then the delete drops the membership)
    or it fails and leaves nothing."""
    for round_ in range(4):
        g = f"g{round_}"
        iot.create_thing_group(thingGroupName=g)
        template = body({"t": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": f"t{round_}", "ThingGroups": [g]}}})

        def act(i):
            if i == 0:
                return iot.delete_thing_group(thingGroupName=g)
            return iot.register_thing(templateBody=template)
        results = race_threads(3, act, ClientError, error_code)
        assert all(r[0] == "ok" or r[1] == "ResourceRegistrationFailureException" for r in results), results
        things = [t["thingName"] for t in iot.list_things()["things"]]
        if f"t{round_}" in things:
            assert iot.list_thing_groups_for_thing(thingName=f"t{round_}")["thingGroups"] == []


def test_racing_registrations_of_one_thing_make_it_once(iot):
    template = body({
        "t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "shared"}},
        "c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateSigningRequest": {"Ref": "CSR"}}},
    })
    csrs = [make_csr()[0] for _ in range(4)]
    results = race_threads(4, lambda i: iot.register_thing(templateBody=template,
                                                           parameters={"CSR": csrs[i]}),
                           ClientError, error_code)
    assert all(r[0] == "ok" for r in results), results
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["shared"]
    assert len(iot.list_thing_principals(thingName="shared")["principals"]) == 4
    # A certificate from a template without Status is INACTIVE.
    for c in iot.list_certificates()["certificates"]:
        assert c["status"] == "INACTIVE"


def test_thing_principal_v2_lists(iot):
    iot.create_thing(thingName="a")
    iot.create_thing(thingName="b")
    c1 = iot.create_keys_and_certificate()["certificateArn"]
    c2 = iot.create_keys_and_certificate()["certificateArn"]
    iot.attach_thing_principal(thingName="a", principal=c1, thingPrincipalType="EXCLUSIVE_THING")
    iot.attach_thing_principal(thingName="a", principal=c2)
    iot.attach_thing_principal(thingName="b", principal=c2, thingPrincipalType="NON_EXCLUSIVE_THING")
    with expect_error(iot, "InvalidRequestException"):
        iot.attach_thing_principal(thingName="b", principal=c1)
    objs = iot.list_thing_principals_v2(thingName="a")["thingPrincipalObjects"]
    assert objs == [{"principal": c1, "thingPrincipalType": "EXCLUSIVE_THING"},
                    {"principal": c2, "thingPrincipalType": "NON_EXCLUSIVE_THING"}]
    assert iot.list_thing_principals_v2(thingName="a", thingPrincipalType="EXCLUSIVE_THING")[
        "thingPrincipalObjects"] == [{"principal": c1, "thingPrincipalType": "EXCLUSIVE_THING"}]
    page = iot.list_thing_principals_v2(thingName="a", maxResults=1)
    assert len(page["thingPrincipalObjects"]) == 1 and page["nextToken"]
    assert iot.list_principal_things_v2(principal=c2)["principalThingObjects"] == [
        {"thingName": "a", "thingPrincipalType": "NON_EXCLUSIVE_THING"},
        {"thingName": "b", "thingPrincipalType": "NON_EXCLUSIVE_THING"}]
    assert iot.list_principal_things_v2(principal=c2, thingPrincipalType="EXCLUSIVE_THING")[
        "principalThingObjects"] == []
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_thing_principals_v2(thingName="ghost")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_principal_things_v2(principal=f"arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{'b' * 64}")


def test_thing_principal_type_is_checked(iot_novalidate):
    iot_novalidate.create_thing(thingName="a")
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.list_thing_principals_v2(thingName="a", thingPrincipalType="SOMETIMES")


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return json.loads(res.stdout) if res.stdout.strip() else None


def test_cli_templates_and_register_thing(server, iot, tmp_path):
    f = tmp_path / "template.json"
    f.write_text(SIMPLE)
    made = ok(run_aws(server.url, ["create-provisioning-template", "--template-name", "cli",
                                   "--template-body", f"file://{f}", "--provisioning-role-arn", ROLE,
                                   "--enabled"]))
    assert made["templateArn"] == arn("provisioningtemplate", "cli")
    listed = ok(run_aws(server.url, ["list-provisioning-templates"]))["templates"]
    assert [t["templateName"] for t in listed] == ["cli"]
    out = ok(run_aws(server.url, ["register-thing", "--template-body", f"file://{f}",
                                  "--parameters", "ThingName=from-cli"]))
    assert out["resourceArns"] == {"thing": arn("thing", "from-cli")}
    assert iot.describe_thing(thingName="from-cli")["thingName"] == "from-cli"
    res = run_aws(server.url, ["describe-provisioning-template", "--template-name", "ghost"])
    assert res.returncode != 0 and "ResourceNotFoundException" in res.stderr
