"""Static thing groups: hierarchy, properties, versions, members, and races."""

from __future__ import annotations

from botocore.exceptions import ClientError

from aws_harness import ACCOUNT_A, REGION, error_code, expect_error
from certplane_server import race_threads


def group_arn(name):
    return f"arn:aws:iot:{REGION}:{ACCOUNT_A}:thinggroup/{name}"


def names(resp):
    return [g["groupName"] for g in resp["thingGroups"]]


def make_tree(iot):
    iot.create_thing_group(thingGroupName="root")
    iot.create_thing_group(thingGroupName="mid", parentGroupName="root")
    iot.create_thing_group(thingGroupName="leaf", parentGroupName="mid")
    iot.create_thing_group(thingGroupName="other")


def test_create_describe_and_hierarchy(iot):
    made = iot.create_thing_group(thingGroupName="root", thingGroupProperties={
        "thingGroupDescription": "top", "attributePayload": {"attributes": {"site": "a"}}})
    assert made["thingGroupArn"] == group_arn("root") and made["thingGroupId"]
    again = iot.create_thing_group(thingGroupName="root", thingGroupProperties={
        "thingGroupDescription": "top", "attributePayload": {"attributes": {"site": "a"}}})
    assert again["thingGroupId"] == made["thingGroupId"]
    with expect_error(iot, "ResourceAlreadyExistsException"):
        iot.create_thing_group(thingGroupName="root")
    iot.create_thing_group(thingGroupName="mid", parentGroupName="root")
    iot.create_thing_group(thingGroupName="leaf", parentGroupName="mid")
    with expect_error(iot, "InvalidRequestException"):
        iot.create_thing_group(thingGroupName="orphan", parentGroupName="nope")

    d = iot.describe_thing_group(thingGroupName="root")
    assert d["version"] == 1
    assert d["thingGroupProperties"] == {"thingGroupDescription": "top",
                                         "attributePayload": {"attributes": {"site": "a"}}}
    assert list(d["thingGroupMetadata"]) == ["creationDate"]
    leaf = iot.describe_thing_group(thingGroupName="leaf")
    assert leaf["thingGroupMetadata"]["parentGroupName"] == "mid"
    assert leaf["thingGroupMetadata"]["rootToParentThingGroups"] == [
        {"groupName": "root", "groupArn": group_arn("root")},
        {"groupName": "mid", "groupArn": group_arn("mid")}]
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_thing_group(thingGroupName="nope")


def test_list_thing_groups_filters(iot):
    make_tree(iot)
    assert names(iot.list_thing_groups()) == ["root", "mid", "leaf", "other"]
    assert names(iot.list_thing_groups(recursive=False)) == ["root", "other"]
    assert names(iot.list_thing_groups(parentGroup="root")) == ["mid", "leaf"]
    assert names(iot.list_thing_groups(parentGroup="root", recursive=False)) == ["mid"]
    assert names(iot.list_thing_groups(namePrefixFilter="m")) == ["mid"]
    assert names(iot.list_thing_groups(parentGroup="root", namePrefixFilter="l")) == ["leaf"]
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_thing_groups(parentGroup="nope")
    page = iot.list_thing_groups(maxResults=3)
    assert len(page["thingGroups"]) == 3
    assert names(iot.list_thing_groups(maxResults=3, nextToken=page["nextToken"])) == ["other"]


def test_update_and_delete(iot):
    make_tree(iot)
    v = iot.update_thing_group(thingGroupName="root", thingGroupProperties={
        "thingGroupDescription": "d", "attributePayload": {"attributes": {"a": "1"}}})["version"]
    assert v == 2
    v = iot.update_thing_group(thingGroupName="root", expectedVersion=2, thingGroupProperties={
        "attributePayload": {"attributes": {"b": "2"}, "merge": True}})["version"]
    assert v == 3
    props = iot.describe_thing_group(thingGroupName="root")["thingGroupProperties"]
    assert props == {"thingGroupDescription": "d", "attributePayload": {"attributes": {"a": "1", "b": "2"}}}
    with expect_error(iot, "VersionConflictException"):
        iot.update_thing_group(thingGroupName="root", expectedVersion=2, thingGroupProperties={})
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_thing_group(thingGroupName="nope", thingGroupProperties={})

    with expect_error(iot, "InvalidRequestException"):
        iot.delete_thing_group(thingGroupName="mid")  # has a child
    with expect_error(iot, "VersionConflictException"):
        iot.delete_thing_group(thingGroupName="leaf", expectedVersion=7)
    iot.delete_thing_group(thingGroupName="leaf", expectedVersion=1)
    iot.delete_thing_group(thingGroupName="mid")
    iot.delete_thing_group(thingGroupName="nope")  # nothing to delete: success
    assert names(iot.list_thing_groups()) == ["root", "other"]


def test_members(iot):
    make_tree(iot)
    for t in ("t1", "t2", "t3"):
        iot.create_thing(thingName=t)
    iot.add_thing_to_thing_group(thingGroupName="root", thingName="t1")
    iot.add_thing_to_thing_group(thingGroupArn=group_arn("leaf"),
                                 thingArn=f"arn:aws:iot:{REGION}:{ACCOUNT_A}:thing/t2")
    iot.add_thing_to_thing_group(thingGroupName="leaf", thingName="t2")  # again: no-op
    iot.add_thing_to_thing_group(thingGroupName="mid", thingName="t1")
    assert iot.list_things_in_thing_group(thingGroupName="root")["things"] == ["t1"]
    assert sorted(iot.list_things_in_thing_group(thingGroupName="root", recursive=True)["things"]) == ["t1", "t2"]
    assert names(iot.list_thing_groups_for_thing(thingName="t1")) == ["root", "mid"]
    assert iot.list_thing_groups_for_thing(thingName="t1")["thingGroups"][0]["groupArn"] == group_arn("root")

    iot.update_thing_groups_for_thing(thingName="t1", thingGroupsToAdd=["other"],
                                      thingGroupsToRemove=["root"])
    assert names(iot.list_thing_groups_for_thing(thingName="t1")) == ["mid", "other"]
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_thing_groups_for_thing(thingName="t1", thingGroupsToAdd=["nope"],
                                          thingGroupsToRemove=["mid"])
    assert names(iot.list_thing_groups_for_thing(thingName="t1")) == ["mid", "other"]  # nothing changed

    iot.remove_thing_from_thing_group(thingGroupName="mid", thingName="t1")
    iot.remove_thing_from_thing_group(thingGroupName="mid", thingName="t1")  # not a member: no-op
    assert names(iot.list_thing_groups_for_thing(thingName="t1")) == ["other"]
    with expect_error(iot, "ResourceNotFoundException"):
        iot.add_thing_to_thing_group(thingGroupName="nope", thingName="t1")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.add_thing_to_thing_group(thingGroupName="root", thingName="ghost")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_things_in_thing_group(thingGroupName="nope")
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_thing_groups_for_thing(thingName="ghost")

    # Deleting a thing or a group drops its memberships.
    iot.delete_thing(thingName="t2")
    assert iot.list_things_in_thing_group(thingGroupName="leaf")["things"] == []
    iot.add_thing_to_thing_group(thingGroupName="other", thingName="t3")
    iot.delete_thing_group(thingGroupName="other")
    assert iot.list_thing_groups_for_thing(thingName="t3")["thingGroups"] == []


def test_at_most_ten_groups_per_thing(iot):
    iot.create_thing(thingName="t")
    for i in range(11):
        iot.create_thing_group(thingGroupName=f"g{i}")
    for i in range(10):
        iot.add_thing_to_thing_group(thingGroupName=f"g{i}", thingName="t")
    with expect_error(iot, "InvalidRequestException"):
        iot.add_thing_to_thing_group(thingGroupName="g10", thingName="t")


def test_groups_are_per_account(iot, iot_b):
    iot.create_thing_group(thingGroupName="mine")
    assert iot_b.list_thing_groups()["thingGroups"] == []
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.describe_thing_group(thingGroupName="mine")


def test_racing_creators_of_one_group(iot):
    results = race_threads(8, lambda i: iot.create_thing_group(
        thingGroupName="g", thingGroupProperties={"thingGroupDescription": f"by {i}"})["thingGroupId"],
        ClientError, error_code)
    oks = [r for r in results if r[0] == "ok"]
    assert len(oks) == 1, results
    assert [r[1] for r in results if r[0] != "ok"] == ["ResourceAlreadyExistsException"] * 7


def test_racing_child_creation_and_parent_deletion(iot):
    """A child created while its parent is deleted: never a child of a deleted parent."""
    for round_ in range(5):
        parent = f"p{round_}"
        iot.create_thing_group(thingGroupName=parent)

        def act(i):
            if i == 0:
                return iot.delete_thing_group(thingGroupName=parent)
            return iot.create_thing_group(thingGroupName=f"{parent}-c{i}", parentGroupName=parent)
        race_threads(4, act, ClientError, error_code)
        groups = names(iot.list_thing_groups())
        children = [g for g in groups if g.startswith(f"{parent}-c")]
        if parent not in groups:
            assert children == [], groups
        for c in children:
            iot.delete_thing_group(thingGroupName=c)
        iot.delete_thing_group(thingGroupName=parent)


def test_moving_one_thing_between_groups_concurrently(iot):
    iot.create_thing(thingName="t")
    for g in ("a", "b", "c"):
        iot.create_thing_group(thingGroupName=g)
    iot.add_thing_to_thing_group(thingGroupName="a", thingName="t")
    targets = ["b", "c"] * 4
    race_threads(len(targets), lambda i: iot.update_thing_groups_for_thing(
        thingName="t", thingGroupsToAdd=[targets[i]], thingGroupsToRemove=["a", "b", "c"][:0] or
        [g for g in ("a", "b", "c") if g != targets[i]]), ClientError, error_code)
    # Whatever the order, each move removes every other group: the thing ends in exactly one.
    assert len(iot.list_thing_groups_for_thing(thingName="t")["thingGroups"]) == 1


def test_policies_attach_to_existing_thing_groups_only(iot):
    iot.create_policy(policyName="p", policyDocument='{"Version": "2012-10-17", "Statement": []}')
    iot.create_thing_group(thingGroupName="g")
    iot.attach_policy(policyName="p", target=group_arn("g"))
    assert [p["policyName"] for p in iot.list_attached_policies(target=group_arn("g"))["policies"]] == ["p"]
    assert iot.list_targets_for_policy(policyName="p")["targets"] == [group_arn("g")]
    with expect_error(iot, "ResourceNotFoundException"):
        iot.attach_policy(policyName="p", target=group_arn("nope"))
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_attached_policies(target=group_arn("nope"))


POLICY_DOC = '{"Version": "2012-10-17", "Statement": []}'


def attached(iot, target, **kw):
    return [p["policyName"] for p in iot.list_attached_policies(target=target, **kw)["policies"]]


def test_recursive_attached_policies_include_ancestors(iot):
    make_tree(iot)
    for p in ("p-root", "p-mid", "p-leaf", "p-other", "p-both"):
        iot.create_policy(policyName=p, policyDocument=POLICY_DOC)
    iot.attach_policy(policyName="p-root", target=group_arn("root"))
    iot.attach_policy(policyName="p-both", target=group_arn("root"))
    iot.attach_policy(policyName="p-mid", target=group_arn("mid"))
    iot.attach_policy(policyName="p-leaf", target=group_arn("leaf"))
    iot.attach_policy(policyName="p-both", target=group_arn("leaf"))
    iot.attach_policy(policyName="p-other", target=group_arn("other"))

    # Newest attachment first (isAscendingOrder's default, as for the other marker lists).
    assert attached(iot, group_arn("leaf")) == ["p-both", "p-leaf"]
    assert attached(iot, group_arn("leaf"), recursive=False) == ["p-both", "p-leaf"]
    # Ancestors' policies too, each policy once (at its first attachment), across levels.
    assert attached(iot, group_arn("leaf"), recursive=True) == ["p-leaf", "p-mid", "p-both", "p-root"]
    assert attached(iot, group_arn("mid"), recursive=True) == ["p-mid", "p-both", "p-root"]
    assert attached(iot, group_arn("root"), recursive=True) == ["p-both", "p-root"]
    assert attached(iot, group_arn("other"), recursive=True) == ["p-other"]
    with expect_error(iot, "ResourceNotFoundException"):
        iot.list_attached_policies(target=group_arn("nope"), recursive=True)

    # Paging walks the same merged list.
    seen, marker = [], None
    while True:
        kw = {"marker": marker} if marker else {}
        page = iot.list_attached_policies(target=group_arn("leaf"), recursive=True, pageSize=1, **kw)
        assert len(page["policies"]) <= 1
        seen += [p["policyName"] for p in page["policies"]]
        marker = page.get("nextMarker")
        if not marker:
            break
    assert seen == ["p-leaf", "p-mid", "p-both", "p-root"]
    page = iot.list_attached_policies(target=group_arn("leaf"), recursive=True, pageSize=3)
    assert [p["policyName"] for p in page["policies"]] == ["p-leaf", "p-mid", "p-both"]
    assert page["policies"][0]["policyArn"].endswith(":policy/p-leaf")
    rest = iot.list_attached_policies(target=group_arn("leaf"), recursive=True, pageSize=3,
                                      marker=page["nextMarker"])
    assert [p["policyName"] for p in rest["policies"]] == ["p-root"] and "nextMarker" not in rest

    # Detaching from an ancestor is seen by its descendants.
    iot.detach_policy(policyName="p-root", target=group_arn("root"))
    assert attached(iot, group_arn("leaf"), recursive=True) == ["p-leaf", "p-mid", "p-both"]


def test_recursive_on_a_certificate_lists_its_own_policies(iot):
    """AWS documents `recursive` for thing groups only; a certificate's list is unchanged
    (GetEffectivePolicies is AWS's call for what a device inherits from its things' groups)."""
    iot.create_thing_group(thingGroupName="g")
    iot.create_thing(thingName="t")
    iot.add_thing_to_thing_group(thingGroupName="g", thingName="t")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName="t", principal=cert["certificateArn"])
    for p in ("p-cert", "p-group"):
        iot.create_policy(policyName=p, policyDocument=POLICY_DOC)
    iot.attach_policy(policyName="p-cert", target=cert["certificateArn"])
    iot.attach_policy(policyName="p-group", target=group_arn("g"))
    assert attached(iot, cert["certificateArn"], recursive=True) == ["p-cert"]
    assert attached(iot, cert["certificateArn"]) == ["p-cert"]


def test_deleting_a_group_detaches_its_policies(iot):
    iot.create_policy(policyName="p", policyDocument=POLICY_DOC)
    iot.create_thing_group(thingGroupName="g")
    iot.attach_policy(policyName="p", target=group_arn("g"))
    iot.delete_thing_group(thingGroupName="g")
    assert iot.list_targets_for_policy(policyName="p")["targets"] == []
    iot.create_thing_group(thingGroupName="g")
    assert attached(iot, group_arn("g"), recursive=True) == []
    iot.delete_policy(policyName="p")


def test_attach_racing_group_deletion_leaves_no_stale_attachment(iot):
    iot.create_policy(policyName="p", policyDocument=POLICY_DOC)
    for round_ in range(5):
        g = f"g{round_}"
        iot.create_thing_group(thingGroupName=g)

        def act(i):
            if i == 0:
                return iot.delete_thing_group(thingGroupName=g)
            return iot.attach_policy(policyName="p", target=group_arn(g))
        race_threads(3, act, ClientError, error_code)
        if g not in names(iot.list_thing_groups()):
            assert group_arn(g) not in iot.list_targets_for_policy(policyName="p")["targets"]
        else:
            iot.delete_thing_group(thingGroupName=g)
    assert iot.list_targets_for_policy(policyName="p")["targets"] == []
