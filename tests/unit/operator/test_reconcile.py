"""One reconcile pass against an in-memory cluster: what it applies, says and writes; the
Operator's per-object locks. (The operator tier runs the same against a real API server.)"""

import copy

from scalestage import apply, reconcile
from scalestage.names import API_VERSION
from scalestage.reconcile import Event, Operator


class MemoryCluster(apply.Cluster):
    """apply.Cluster over a dict instead of an API server: what was applied is what is read."""

    def __init__(self):
        super().__init__(resources={})
        self.objects = {}

    def list(self, kind, namespace, selector):
        return [copy.deepcopy(obj) for (k, _), obj in self.objects.items() if k == kind]

    def apply(self, manifest):
        self.writes += 1
        self.objects[apply.key(manifest)] = copy.deepcopy(dict(manifest))

    def delete(self, obj):
        self.writes += 1
        self.objects.pop(apply.key(obj), None)

    def patch_status(self, owner, status):
        self.writes += 1
        self.status = copy.deepcopy(dict(status))


def scalestage(stage, status=None):
    return {"apiVersion": API_VERSION, "kind": apply.SCALESTAGE,
            "metadata": {"name": "chirp", "namespace": "demo", "uid": "u-1", "generation": 1},
            "spec": {"stage": stage}, "status": status or {}}


def run(cluster, stage, status=None):
    cluster.writes = 0
    return reconcile.reconcile(cluster, scalestage(stage, status))


def test_first_pass_applies_everything_says_so_once_and_writes_the_status():
    cluster = MemoryCluster()
    outcome = run(cluster, 3)
    assert outcome.action == "create"
    assert sorted(outcome.applied) == sorted("/".join(k) for k in cluster.objects)
    assert outcome.events == [Event("Normal", "StageChanged", "stage 3 (load-balanced)")]
    assert outcome.status_written and cluster.status["stage"] == 3


def test_a_pass_that_finds_nothing_to_change_writes_nothing():
    cluster = MemoryCluster()
    run(cluster, 3)
    again = run(cluster, 3, cluster.status)
    assert (again.action, again.applied, again.pruned, again.events) == ("in-place", [], [], [])
    assert not again.status_written and cluster.writes == 0


def test_moving_within_a_layout_prunes_what_the_new_stage_does_not_run():
    cluster = MemoryCluster()
    run(cluster, 4)
    down = run(cluster, 3, cluster.status)
    assert down.action == "in-place"
    assert sorted(down.pruned) == ["Deployment/chirp-redis", "Service/chirp-redis"]
    assert down.events == [Event("Normal", "StageChanged",
                                 "stage 4 (cached) → stage 3 (load-balanced)")]


def test_a_data_move_is_refused_once_and_changes_nothing():
    cluster = MemoryCluster()
    run(cluster, 1)
    before = copy.deepcopy(cluster.objects)
    refused = run(cluster, 2, cluster.status)
    assert refused.action == "refused" and refused.applied == refused.pruned == []
    [event] = refused.events
    assert (event.type, event.reason) == ("Warning", "StageChangeRefused")
    assert cluster.objects == before and cluster.writes == 1  # the condition, nothing else
    still = run(cluster, 2, cluster.status)
    assert still.events == [] and cluster.writes == 0


def test_one_lock_per_object():
    operator = Operator(resources={})
    assert operator.lock("demo", "chirp") is operator.lock("demo", "chirp")
    assert operator.lock("demo", "chirp") is not operator.lock("demo", "blog")
    assert operator.lock("demo", "chirp") is not operator.lock("other", "chirp")


def test_default_images_come_from_the_environment():
    environ = {"SCALESTAGE_IMAGE_APP": "example/chirp:1", "SCALESTAGE_IMAGE_REDIS": "",
               "UNRELATED": "x"}
    assert reconcile.default_images_from(environ) == {"app": "example/chirp:1"}
