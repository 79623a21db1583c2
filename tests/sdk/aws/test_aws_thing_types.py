"""Thing types (Create, Describe, List, Update, Deprecate, Delete) and UpdateThing."""

from __future__ import annotations

from botocore.exceptions import ClientError

from aws_harness import ACCOUNT_A, REGION, error_code, expect_error
from certplane_server import race_threads


def type_arn(name):
    return f"arn:aws:iot:{REGION}:{ACCOUNT_A}:thingtype/{name}"


def test_thing_type_lifecycle(iot):
    made = iot.create_thing_type(thingTypeName="lamp", thingTypeProperties={
        "thingTypeDescription": "a lamp", "searchableAttributes": ["room", "floor"]})
    assert made["thingTypeName"] == "lamp" and made["thingTypeArn"] == type_arn("lamp")
    assert made["thingTypeId"]
    with expect_error(iot, "ResourceAlreadyExistsException"):
        iot.create_thing_type(thingTypeName="lamp")

    d = iot.describe_thing_type(thingTypeName="lamp")
    assert d["thingTypeId"] == made["thingTypeId"]
    assert d["thingTypeProperties"] == {"thingTypeDescription": "a lamp",
                                        "searchableAttributes": ["room", "floor"]}
    assert d["thingTypeMetadata"]["deprecated"] is False
    assert "deprecationDate" not in d["thingTypeMetadata"]
    assert d["thingTypeMetadata"]["creationDate"]

    iot.update_thing_type(thingTypeName="lamp",
                          thingTypeProperties={"thingTypeDescription": "a brighter lamp"})
    d = iot.describe_thing_type(thingTypeName="lamp")
    assert d["thingTypeProperties"]["thingTypeDescription"] == "a brighter lamp"
    assert d["thingTypeProperties"]["searchableAttributes"] == ["room", "floor"]

    iot.create_thing_type(thingTypeName="lampshade")
    iot.create_thing_type(thingTypeName="door")
    names = [t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]]
    assert names == ["lamp", "lampshade", "door"]
    names = [t["thingTypeName"] for t in iot.list_thing_types(thingTypeName="lamp")["thingTypes"]]
    assert names == ["lamp", "lampshade"]
    page = iot.list_thing_types(maxResults=2)
    assert len(page["thingTypes"]) == 2
    rest = iot.list_thing_types(maxResults=2, nextToken=page["nextToken"])
    assert [t["thingTypeName"] for t in rest["thingTypes"]] == ["door"] and "nextToken" not in rest


def test_deprecation_keeps_things_refuses_new_ones_and_gates_delete(iot):
    iot.create_thing_type(thingTypeName="old")
    iot.create_thing(thingName="t1", thingTypeName="old")
    with expect_error(iot, "InvalidRequestException"):
        iot.delete_thing_type(thingTypeName="old")  # not deprecated
    iot.deprecate_thing_type(thingTypeName="old")
    meta = iot.describe_thing_type(thingTypeName="old")["thingTypeMetadata"]
    assert meta["deprecated"] is True and meta["deprecationDate"]
    assert iot.describe_thing(thingName="t1")["thingTypeName"] == "old"
    with expect_error(iot, "InvalidRequestException"):
        iot.create_thing(thingName="t2", thingTypeName="old")
    iot.create_thing(thingName="t2")
    with expect_error(iot, "InvalidRequestException"):
        iot.update_thing(thingName="t2", thingTypeName="old")
    with expect_error(iot, "InvalidRequestException"):
        iot.delete_thing_type(thingTypeName="old")  # t1 still has it
    iot.deprecate_thing_type(thingTypeName="old", undoDeprecate=True)
    assert iot.describe_thing_type(thingTypeName="old")["thingTypeMetadata"]["deprecated"] is False
    iot.create_thing(thingName="t3", thingTypeName="old")
    iot.deprecate_thing_type(thingTypeName="old")
    iot.update_thing(thingName="t1", removeThingType=True)
    iot.delete_thing(thingName="t3")
    iot.delete_thing_type(thingTypeName="old")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_thing_type(thingTypeName="old")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.deprecate_thing_type(thingTypeName="old")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.create_thing(thingName="t4", thingTypeName="old")


def test_thing_types_are_per_account(iot, iot_b):
    iot.create_thing_type(thingTypeName="mine")
    assert iot_b.list_thing_types()["thingTypes"] == []
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.describe_thing_type(thingTypeName="mine")
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.create_thing(thingName="x", thingTypeName="mine")


def test_update_thing_attributes_type_and_version(iot):
    iot.create_thing_type(thingTypeName="ty")
    iot.create_thing(thingName="t", attributePayload={"attributes": {"a": "1", "b": "2"}})
    iot.update_thing(thingName="t", attributePayload={"attributes": {"c": "3"}})
    d = iot.describe_thing(thingName="t")
    assert d["attributes"] == {"c": "3"} and d["version"] == 2
    iot.update_thing(thingName="t", attributePayload={"attributes": {"a": "1", "c": ""}, "merge": True})
    assert iot.describe_thing(thingName="t")["attributes"] == {"a": "1"}
    iot.update_thing(thingName="t", thingTypeName="ty", expectedVersion=3)
    d = iot.describe_thing(thingName="t")
    assert d["thingTypeName"] == "ty" and d["version"] == 4 and d["attributes"] == {"a": "1"}
    assert [t["thingName"] for t in iot.list_things(thingTypeName="ty")["things"]] == ["t"]
    with expect_error(iot, "VersionConflictException"):
        iot.update_thing(thingName="t", removeThingType=True, expectedVersion=3)
    with expect_error(iot, "InvalidRequestException"):
        iot.update_thing(thingName="t", thingTypeName="ty", removeThingType=True)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_thing(thingName="t", thingTypeName="nope")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_thing(thingName="nobody", attributePayload={"attributes": {"a": "1"}})
    iot.update_thing(thingName="t", removeThingType=True, expectedVersion=4)
    assert "thingTypeName" not in iot.describe_thing(thingName="t")


def test_list_things_filters(iot):
    iot.create_thing_type(thingTypeName="ty")
    iot.create_thing(thingName="a", thingTypeName="ty", attributePayload={"attributes": {"room": "kitchen"}})
    iot.create_thing(thingName="b", attributePayload={"attributes": {"room": "kitchenette"}})
    iot.create_thing(thingName="c", attributePayload={"attributes": {"floor": "kitchen"}})

    def names(**kw):
        return [t["thingName"] for t in iot.list_things(**kw)["things"]]
    assert names(attributeName="room", attributeValue="kitchen") == ["a"]
    assert names(attributeName="room", attributeValue="kitchen", usePrefixAttributeValue=True) == ["a", "b"]
    assert names(attributeName="room") == ["a", "b"]
    assert names(thingTypeName="ty") == ["a"]
    assert names(thingTypeName="ty", attributeName="room", attributeValue="kitchenette") == []


def test_racing_updates_with_one_expected_version(iot):
    iot.create_thing(thingName="t")
    results = race_threads(8, lambda i: iot.update_thing(
        thingName="t", expectedVersion=1, attributePayload={"attributes": {"w": str(i)}}),
        ClientError, error_code)
    oks = [r for r in results if r[0] == "ok"]
    assert len(oks) == 1, results
    assert sorted(r[1] for r in results if r[0] != "ok") == ["VersionConflictException"] * 7
    assert iot.describe_thing(thingName="t")["version"] == 2


def test_racing_thing_creation_and_type_deprecation(iot):
    """A thing created while its type is deprecated either exists with the type (created
    first) or is refused: never a thing of a type that was already deprecated."""
    for round_ in range(5):
        ty = f"ty{round_}"
        iot.create_thing_type(thingTypeName=ty)

        def act(i):
            if i == 0:
                return iot.deprecate_thing_type(thingTypeName=ty)
            return iot.create_thing(thingName=f"{ty}-{i}", thingTypeName=ty)
        results = race_threads(6, act, ClientError, error_code)
        assert results[0][0] == "ok", results
        assert all(r[0] == "ok" or r[1] == "InvalidRequestException" for r in results), results
        created = [t["thingName"] for t in iot.list_things(thingTypeName=ty)["things"]]
        assert len(created) == sum(1 for r in results[1:] if r[0] == "ok")
