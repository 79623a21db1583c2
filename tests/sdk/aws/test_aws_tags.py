"""TagResource, UntagResource, ListTagsForResource on every taggable resource certplane holds."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from aws_harness import ACCOUNT_A, REGION, error_code, expect_error
from certplane_server import race_threads


def arn(kind, name):
    return f"arn:aws:iot:{REGION}:{ACCOUNT_A}:{kind}/{name}"


def tags_of(iot, resource):
    return {t["Key"]: t["Value"] for t in iot.list_tags_for_resource(resourceArn=resource)["tags"]}


MAKERS = {
    "policy": lambda iot: iot.create_policy(policyName="x", policyDocument="{}",
                                            tags=[{"Key": "made", "Value": "1"}]),
    "thingtype": lambda iot: iot.create_thing_type(thingTypeName="x",
                                                   tags=[{"Key": "made", "Value": "1"}]),
    "thinggroup": lambda iot: iot.create_thing_group(thingGroupName="x",
                                                     tags=[{"Key": "made", "Value": "1"}]),
    "billinggroup": lambda iot: iot.create_billing_group(billingGroupName="x",
                                                         tags=[{"Key": "made", "Value": "1"}]),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_tag_untag_list(iot, kind):
    MAKERS[kind](iot)
    res = arn(kind, "x")
    assert tags_of(iot, res) == {"made": "1"}
    iot.tag_resource(resourceArn=res, tags=[{"Key": "env", "Value": "prod"},
                                            {"Key": "made", "Value": "2"}])
    assert tags_of(iot, res) == {"made": "2", "env": "prod"}
    iot.untag_resource(resourceArn=res, tagKeys=["made", "absent"])
    assert tags_of(iot, res) == {"env": "prod"}


def test_tag_errors(iot, iot_b):
    iot.create_thing_group(thingGroupName="g")
    res = arn("thinggroup", "g")
    with expect_error(iot, "InvalidRequestException"):
        iot.tag_resource(resourceArn=res, tags=[{"Key": "aws:owner", "Value": "x"}])
    with expect_error(iot, "LimitExceededException"):
        iot.tag_resource(resourceArn=res, tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert tags_of(iot, res) == {}
    with expect_error(iot, "ResourceNotFoundException"):
        iot.tag_resource(resourceArn=arn("thinggroup", "nope"), tags=[{"Key": "a", "Value": "b"}])
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_tags_for_resource(resourceArn=arn("policy", "nope"))
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.list_tags_for_resource(resourceArn=res)
    with expect_error(iot, "InvalidRequestException"):
        iot.list_tags_for_resource(resourceArn=arn("rolealias", "r"))


def test_racing_taggers_lose_nothing(iot):
    iot.create_billing_group(billingGroupName="bg")
    res = arn("billinggroup", "bg")
    results = race_threads(8, lambda i: iot.tag_resource(
        resourceArn=res, tags=[{"Key": f"k{i}", "Value": str(i)}]), ClientError, error_code)
    assert all(r[0] == "ok" for r in results), results
    assert tags_of(iot, res) == {f"k{i}": str(i) for i in range(8)}


def test_ca_certificate_tags(iot, ca_material):
    _, ca_id = ca_material
    res = arn("cacert", ca_id)
    iot.tag_resource(resourceArn=res, tags=[{"Key": "team", "Value": "ops"}])
    assert tags_of(iot, res) == {"team": "ops"}
    iot.untag_resource(resourceArn=res, tagKeys=["team"])
    assert tags_of(iot, res) == {}
    assert iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["status"] == "ACTIVE"
