"""The applier's pure decisions: what to apply (nothing when unchanged), what to prune."""

import copy
import json

from kubernetes.client.exceptions import ApiException

from scalestage import apply
from scalestage.names import APPLIED_HASH, ARCHITECTURE_SEEN, HOLDS_DATA

OWNER = {"apiVersion": "scalestage.dev/v1alpha1", "kind": "ScaleStage",
         "metadata": {"name": "chirp", "namespace": "demo", "uid": "u-1"}}


def deployment(replicas=3, **labels):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "chirp-web", "labels": {"a": "b", **labels}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "web", "resources": {"requests": {"cpu": "0.5", "memory": "128Mi"}}}]}}}}


def as_stored(manifest):
    """What the API server gives back: our fields, plus defaults and bookkeeping it adds."""
    out = copy.deepcopy(manifest)
    out["metadata"].update(uid="x", resourceVersion="7", generation=2, managedFields=[])
    out["spec"]["strategy"] = {"type": "RollingUpdate"}
    container = out["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["requests"]["cpu"] = "500m"
    container["terminationMessagePath"] = "/dev/termination-log"
    out["status"] = {"replicas": 3}
    return out


def test_owned_adds_namespace_owner_and_hash_without_touching_the_input():
    original = deployment()
    out = apply.owned(original, OWNER)
    assert out["metadata"]["namespace"] == "demo"
    [ref] = out["metadata"]["ownerReferences"]
    assert ref == {"apiVersion": "scalestage.dev/v1alpha1", "kind": "ScaleStage", "name": "chirp",
                   "uid": "u-1", "controller": True, "blockOwnerDeletion": True}
    assert out["metadata"]["annotations"][APPLIED_HASH]
    assert "ownerReferences" not in original["metadata"]


def test_unchanged_child_is_not_applied_again():
    desired = apply.owned(deployment(), OWNER)
    assert apply.needs_apply(desired, as_stored(desired)) is False


def test_missing_child_is_applied():
    assert apply.needs_apply(apply.owned(deployment(), OWNER), None) is True


def test_changed_wish_is_applied():
    stored = as_stored(apply.owned(deployment(3), OWNER))
    assert apply.needs_apply(apply.owned(deployment(5), OWNER), stored) is True


def test_hand_edit_of_our_field_is_undone():
    desired = apply.owned(deployment(), OWNER)
    stored = as_stored(desired)
    stored["spec"]["replicas"] = 1
    assert apply.needs_apply(desired, stored) is True


def test_dropped_field_is_noticed_through_the_hash():
    with_label = apply.owned(deployment(extra="yes"), OWNER)
    without = apply.owned(deployment(), OWNER)
    assert apply.needs_apply(without, as_stored(with_label)) is True


def test_quantities_compare_by_value():
    assert apply.same_value("0.5", "500m") and apply.same_value("1Gi", "1024Mi")
    assert not apply.same_value("1Gi", "1G")
    assert not apply.same_value("web", "worker")


def test_empty_wishes_match_absent_fields():
    assert apply.same_value({}, None) and apply.same_value([], None)
    assert not apply.same_value(["a"], [])


def test_prune_only_what_no_builder_asked_for_and_never_data():
    observed = [
        {"kind": "Deployment", "metadata": {"name": "chirp-web"}},
        {"kind": "Deployment", "metadata": {"name": "chirp-redis"}},
        {"kind": "StatefulSet", "metadata": {"name": "chirp-db-replica",
                                             "labels": {HOLDS_DATA: "false"}}},
        {"kind": "StatefulSet", "metadata": {"name": "chirp-db-primary",
                                             "labels": {HOLDS_DATA: "true"}}},
    ]
    pruned = apply.to_prune(observed, {("Deployment", "chirp-web")})
    assert [apply.key(o) for o in pruned] == [("Deployment", "chirp-redis"),
                                               ("StatefulSet", "chirp-db-replica")]


def test_ownership_check():
    obj = {"metadata": {"ownerReferences": [{"uid": "u-1"}]}}
    assert apply.is_owned_by(obj, "u-1") and not apply.is_owned_by(obj, "u-2")
    assert not apply.is_owned_by({"metadata": {}}, "u-1")


def test_owner_of_names_the_controlling_scalestage():
    ref = {"apiVersion": "scalestage.dev/v1alpha1", "kind": "ScaleStage", "name": "chirp",
           "uid": "u1", "controller": True}
    assert apply.owner_of({"metadata": {"ownerReferences": [ref]}}) == "chirp"
    assert apply.owner_of({"metadata": {"ownerReferences": [{**ref, "controller": False}]}}) is None
    other = {**ref, "apiVersion": "apps/v1", "kind": "ReplicaSet"}
    assert apply.owner_of({"metadata": {"ownerReferences": [other]}}) is None
    assert apply.owner_of({"metadata": {}}) is None


def test_namespace_terminating_is_told_apart_from_rbac_refusals():
    def refused(message):
        error = ApiException(status=403, reason="Forbidden")
        error.body = json.dumps({"message": message, "reason": "Forbidden"})
        return error

    assert apply.namespace_terminating(refused(
        'secrets "chirp-credentials" is forbidden: unable to create new content in namespace '
        'demo because it is being terminated'))
    assert not apply.namespace_terminating(refused(
        'secrets is forbidden: User "system:serviceaccount:x:y" cannot create resource'))
    assert not apply.namespace_terminating(ApiException(status=404, reason="Not Found"))


# --- a child's name held by another object (issue 13) ------------------------------------------
def meta_only(kind, name, controller_uid=None, controller_kind="ScaleStage", owner_name="chirp"):
    """An object as a metadata-only list gives it back."""
    refs = [] if controller_uid is None else [
        {"apiVersion": "scalestage.dev/v1alpha1", "kind": controller_kind, "name": owner_name,
         "uid": controller_uid, "controller": True}]
    return {"kind": kind, "metadata": {"name": name, "ownerReferences": refs}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}}


def test_only_children_not_among_ours_need_their_names_checked():
    desired = [service("chirp-web"), service("chirp-web-db-rw"), deployment()]
    observed = {("Service", "chirp-web-db-rw"): {}}
    assert apply.unclaimed(desired, observed) == {"Service": {"chirp-web"},
                                                  "Deployment": {"chirp-web"}}
    # every child exists already: nothing to read
    assert apply.unclaimed(desired, {apply.key(m): {} for m in desired}) == {}


def test_a_name_controlled_by_another_owner_or_by_none_is_taken():
    wanted = {"Service": {"chirp-web", "chirp-web-db-rw", "chirp-web-db-ro"},
              "Secret": {"chirp-web-credentials"}}
    existing = {
        # another ScaleStage's web Service: the collision of issue 13
        "Service": [meta_only("Service", "chirp-web", "u-2"),
                    meta_only("Service", "chirp-web-db-rw", "u-1"),  # ours, labels edited away
                    meta_only("Service", "unrelated", None)],
        "Secret": [meta_only("Secret", "chirp-web-credentials", None)],  # made by hand
    }
    assert apply.taken(wanted, existing, "u-1") == [
        apply.Taken("Secret", "chirp-web-credentials", "no one"),
        apply.Taken("Service", "chirp-web", "ScaleStage chirp (uid u-2)"),
    ]


def test_a_non_controller_owner_reference_of_ours_does_not_make_it_ours():
    obj = meta_only("Service", "chirp-web", "u-2", controller_kind="Deployment", owner_name="x")
    obj["metadata"]["ownerReferences"].append({"uid": "u-1", "controller": False})
    [taken] = apply.taken({"Service": {"chirp-web"}}, {"Service": [obj]}, "u-1")
    assert (taken.child, taken.holder) == ("Service/chirp-web", "Deployment x")


def test_nothing_is_taken_when_the_names_are_free():
    assert apply.taken({"Service": {"chirp-web"}}, {"Service": []}, "u-1") == []
    assert apply.taken({}, {}, "u-1") == []


def test_pods_are_told_about_a_document_version_they_have_not_seen():
    def pod(name, seen=None, deleting=False):
        meta = {"name": name, "annotations": {ARCHITECTURE_SEEN: seen} if seen else None}
        return {"metadata": {**meta, **({"deletionTimestamp": "now"} if deleting else {})}}

    pods = [pod("b"), pod("a", seen="v1"), pod("c", seen="v2"), pod("d", deleting=True)]
    assert apply.pods_to_refresh(pods, "v2") == ["a", "b"]
    assert apply.refresh_patch("v2") == {"metadata": {"annotations": {ARCHITECTURE_SEEN: "v2"}}}
    assert apply.document_version(None) is None
    assert apply.document_version({"metadata": {"annotations": {APPLIED_HASH: "h"}}}) == "h"
