"""Billing groups: Create, Describe, List, Update, Delete and their things."""

from __future__ import annotations

from botocore.exceptions import ClientError

from aws_harness import ACCOUNT_A, REGION, error_code, expect_error
from certplane_server import race_threads


def bg_arn(name):
    return f"arn:aws:iot:{REGION}:{ACCOUNT_A}:billinggroup/{name}"


def test_billing_group_lifecycle(iot):
    made = iot.create_billing_group(billingGroupName="bg",
                                    billingGroupProperties={"billingGroupDescription": "d"})
    assert made["billingGroupArn"] == bg_arn("bg") and made["billingGroupId"]
    with expect_error(iot, "ResourceAlreadyExistsException"):
        iot.create_billing_group(billingGroupName="bg",
                                 billingGroupProperties={"billingGroupDescription": "d"})
    d = iot.describe_billing_group(billingGroupName="bg")
    assert d["billingGroupProperties"] == {"billingGroupDescription": "d"}
    assert d["version"] == 1 and d["billingGroupMetadata"]["creationDate"]
    assert iot.update_billing_group(billingGroupName="bg", expectedVersion=1,
                                    billingGroupProperties={"billingGroupDescription": "e"})["version"] == 2
    with expect_error(iot, "VersionConflictException"):
        iot.update_billing_group(billingGroupName="bg", expectedVersion=1, billingGroupProperties={})
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_billing_group(billingGroupName="nope", billingGroupProperties={})
    iot.create_billing_group(billingGroupName="bg2")
    iot.create_billing_group(billingGroupName="other")
    listed = iot.list_billing_groups()["billingGroups"]
    assert [g["groupName"] for g in listed] == ["bg", "bg2", "other"]
    assert listed[0]["groupArn"] == bg_arn("bg")
    assert [g["groupName"] for g in iot.list_billing_groups(namePrefixFilter="bg")["billingGroups"]] == ["bg", "bg2"]
    with expect_error(iot, "VersionConflictException"):
        iot.delete_billing_group(billingGroupName="bg", expectedVersion=1)
    iot.delete_billing_group(billingGroupName="bg", expectedVersion=2)
    iot.delete_billing_group(billingGroupName="bg")  # already gone: success
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_billing_group(billingGroupName="bg")


def test_things_in_billing_groups(iot):
    iot.create_billing_group(billingGroupName="a")
    iot.create_billing_group(billingGroupName="b")
    iot.create_thing(thingName="t1", billingGroupName="a")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.create_thing(thingName="t9", billingGroupName="nope")
    iot.create_thing(thingName="t2")
    assert iot.describe_thing(thingName="t1")["billingGroupName"] == "a"
    iot.add_thing_to_billing_group(billingGroupArn=bg_arn("a"),
                                   thingArn=f"arn:aws:iot:{REGION}:{ACCOUNT_A}:thing/t2")
    assert iot.list_things_in_billing_group(billingGroupName="a")["things"] == ["t1", "t2"]
    # A thing is in one billing group: adding to another moves it.
    iot.add_thing_to_billing_group(billingGroupName="b", thingName="t2")
    assert iot.list_things_in_billing_group(billingGroupName="a")["things"] == ["t1"]
    assert iot.describe_thing(thingName="t2")["billingGroupName"] == "b"
    iot.remove_thing_from_billing_group(billingGroupName="a", thingName="t2")  # not in a: no-op
    assert iot.describe_thing(thingName="t2")["billingGroupName"] == "b"
    iot.remove_thing_from_billing_group(billingGroupName="b", thingName="t2")
    assert "billingGroupName" not in iot.describe_thing(thingName="t2")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.add_thing_to_billing_group(billingGroupName="nope", thingName="t2")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.add_thing_to_billing_group(billingGroupName="a", thingName="ghost")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_things_in_billing_group(billingGroupName="nope")
    iot.delete_thing(thingName="t1")
    assert iot.list_things_in_billing_group(billingGroupName="a")["things"] == []
    iot.add_thing_to_billing_group(billingGroupName="a", thingName="t2")
    iot.delete_billing_group(billingGroupName="a")
    assert "billingGroupName" not in iot.describe_thing(thingName="t2")


def test_racing_add_and_delete_leaves_no_thing_in_a_deleted_group(iot):
    for round_ in range(5):
        g = f"g{round_}"
        iot.create_billing_group(billingGroupName=g)
        iot.create_thing(thingName=f"t{round_}")

        def act(i):
            if i == 0:
                return iot.delete_billing_group(billingGroupName=g)
            return iot.add_thing_to_billing_group(billingGroupName=g, thingName=f"t{round_}")
        results = race_threads(4, act, ClientError, error_code)
        assert all(r[0] == "ok" or r[1] == "ResourceNotFoundException" for r in results), results
        assert "billingGroupName" not in iot.describe_thing(thingName=f"t{round_}")
