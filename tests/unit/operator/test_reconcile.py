"""One reconcile pass against an in-memory cluster: what it applies, says and writes; the
Operator's per-object locks. (The operator tier runs the same against a real API server.)"""

import copy

from scalestage import apply, reconcile
from scalestage.names import API_VERSION, APPLIED_HASH, ARCHITECTURE_SEEN
from scalestage.reconcile import Event, Operator


class MemoryCluster(apply.Cluster):
    """apply.Cluster over a dict instead of an API server: what was applied is what is read."""

    def __init__(self):
        super().__init__(resources={})
        self.objects = {}

    def list(self, kind, namespace, selector):
        return [copy.deepcopy(obj) for (k, _), obj in self.objects.items() if k == kind]

    def list_metadata(self, kind, namespace):
        return self.list(kind, namespace, None)

    def apply(self, manifest):
        self.writes += 1
        self.objects[apply.key(manifest)] = copy.deepcopy(dict(manifest))

    def delete(self, obj):
        self.writes += 1
        self.objects.pop(apply.key(obj), None)

    def patch_pod(self, namespace, name, patch):
        self.writes += 1
        pod = self.objects[("Pod", name)]
        pod["metadata"].setdefault("annotations", {}).update(patch["metadata"]["annotations"])

    def patch_status(self, owner, status):
        self.writes += 1
        merged = {**getattr(self, "status", {}), **copy.deepcopy(dict(status))}
        self.status = {k: v for k, v in merged.items() if v is not None}  # a merge patch

    def settle(self):
        """What the controllers would do next: every workload rolled out with all pods ready."""
        for (kind, _), obj in self.objects.items():
            if kind in ("Deployment", "StatefulSet"):
                n = obj["spec"]["replicas"]
                obj["status"] = {"replicas": n, "readyReplicas": n, "updatedReplicas": n}

    def finish_job(self, name, outcome="Complete"):
        self.objects[("Job", name)]["status"] = {
            "conditions": [{"type": outcome, "status": "True"}]}


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
    cluster.settle()
    down = run(cluster, 3, cluster.status)
    assert down.action == "in-place"
    cluster.settle()  # Redis is kept until the web pods have rolled (the test below)
    assert sorted(run(cluster, 3, cluster.status).pruned) == [
        "Deployment/chirp-redis", "NetworkPolicy/chirp-netpol-redis", "Service/chirp-redis"]
    # the session store changes (Redis → the web process): the Event says what users see
    assert down.events == [Event("Normal", "StageChanged",
                                 "stage 4 (cached) → stage 3 (load-balanced); sessions now live "
                                 "in the web process, not in Redis: logged-in users log in once "
                                 "more")]


def front_door_component(cluster):
    return cluster.objects[("Service", "chirp")]["spec"]["selector"]["app.kubernetes.io/component"]


def names_of(cluster, kind):
    return sorted(name for (k, name) in cluster.objects if k == kind)


def move_policies(cluster):
    return [n for n in names_of(cluster, "NetworkPolicy") if n.startswith("chirp-netpol-move-")]


MOVE_1_2_POLICIES = [f"chirp-netpol-move-{group}" for group in
                     ("clients", "load", "monolith", "source", "target", "web")]


def test_a_walk_waits_for_each_stage_to_be_ready_before_the_next():
    cluster = MemoryCluster()
    run(cluster, 2)
    cluster.settle()
    first = run(cluster, 4, cluster.status)
    assert cluster.status["stage"] == 3 and cluster.status["phase"] != "Ready"
    assert cluster.status["targetStage"] == 4 and cluster.status["path"] == [4]
    assert first.events[0].message == "stage 2 (separate-db) → stage 3 (load-balanced)"
    run(cluster, 4, cluster.status)  # stage 3's new pods are not ready yet: stays at 3
    assert cluster.status["stage"] == 3
    cluster.settle()
    run(cluster, 4, cluster.status)
    assert cluster.status["stage"] == 4 and "Deployment/chirp-redis" in [
        "/".join(k) for k in cluster.objects]
    cluster.settle()
    run(cluster, 4, cluster.status)
    assert cluster.status["phase"] == "Ready" and cluster.status["path"] == []


def test_a_data_move_1_to_2_runs_every_step_and_retires_the_monolith_last():
    cluster = MemoryCluster()
    run(cluster, 1)
    cluster.settle()
    run(cluster, 2, cluster.status)  # provisioning: the stage-2 database beside the monolith
    migration = cluster.status["migration"]
    assert (migration["from"], migration["to"], migration["step"]) == (1, 2, "provisioning")
    assert cluster.status["phase"] == "Migrating" and cluster.status["stage"] == 1
    assert names_of(cluster, "StatefulSet") == ["chirp-db-primary", "chirp-monolith"]
    assert names_of(cluster, "Deployment") == []  # users still reach the monolith
    assert names_of(cluster, "Job") == []
    assert move_policies(cluster) == MOVE_1_2_POLICIES  # the paths between both layouts

    cluster.settle()
    run(cluster, 2, cluster.status)  # copying: the Job runs `chirp move run`
    assert cluster.status["migration"]["step"] == "copying"
    [job] = names_of(cluster, "Job")
    assert job == "chirp-move-1-2-run"
    args = cluster.objects[("Job", job)]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["move", "run", "--from", "postgresql://chirp@chirp-monolith-db:5432/chirp",
                    "--to", "postgresql://chirp@chirp-db-rw:5432/chirp"]

    cluster.finish_job(job)
    run(cluster, 2, cluster.status)  # switching: stage 2's web applied, the monolith kept
    assert cluster.status["migration"]["step"] == "switching"
    assert names_of(cluster, "Deployment") == ["chirp-web"]
    assert "chirp-monolith" in names_of(cluster, "StatefulSet")
    # the front door stays on the monolith until the web pod is ready
    assert front_door_component(cluster) == "monolith"

    cluster.settle()
    run(cluster, 2, cluster.status)  # completing: the undo streams retired
    assert front_door_component(cluster) == "web"
    assert cluster.status["migration"]["step"] == "completing"
    assert names_of(cluster, "Job") == ["chirp-move-1-2-complete", "chirp-move-1-2-run"]
    assert "chirp-monolith" in names_of(cluster, "StatefulSet")

    cluster.finish_job("chirp-move-1-2-complete")
    run(cluster, 2, cluster.status)  # retiring: the monolith and its volume go
    assert names_of(cluster, "StatefulSet") == ["chirp-db-primary"]
    assert move_policies(cluster) == MOVE_1_2_POLICIES  # until the source is gone
    done = run(cluster, 2, cluster.status)
    assert cluster.status["stage"] == 2 and "migration" not in cluster.status
    assert cluster.status["lastMove"]["from"] == 1 and cluster.status["lastMove"]["to"] == 2
    assert names_of(cluster, "Job") == []
    assert move_policies(cluster) == [] and {
        f"NetworkPolicy/{name}" for name in MOVE_1_2_POLICIES} <= set(done.pruned)
    assert [e.reason for e in done.events] == ["StageChanged"]
    cluster.settle()
    run(cluster, 2, cluster.status)
    assert cluster.status["phase"] == "Ready"


def test_a_move_is_finished_even_when_the_spec_turns_back_mid_move():
    cluster = MemoryCluster()
    run(cluster, 4)
    cluster.settle()
    run(cluster, 5, cluster.status)
    assert cluster.status["migration"]["to"] == 5
    cluster.settle()
    run(cluster, 4, cluster.status)  # the user changed their mind: the move goes on
    assert cluster.status["migration"]["step"] == "copying"
    assert cluster.status["path"] == [5, 4]


def copying(source, target):
    """A cluster at `source`, Ready, moving to `target`: its copy Job created."""
    cluster = MemoryCluster()
    run(cluster, source)
    cluster.settle()
    run(cluster, target, cluster.status)  # provisioning
    cluster.settle()
    run(cluster, target, cluster.status)  # copying
    return cluster


def test_a_failed_move_job_is_a_phase_a_person_sees():
    cluster = copying(1, 2)
    cluster.finish_job("chirp-move-1-2-run", "Failed")
    failed = run(cluster, 2, cluster.status)
    assert cluster.status["phase"] == "Failed"
    ready = next(c for c in cluster.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "MoveFailed" and "chirp-move-1-2-run" in ready["message"]
    assert [(e.type, e.reason) for e in failed.events] == [("Warning", "MoveFailed")]
    assert names_of(cluster, "Deployment") == []  # still the monolith serving


def test_a_shard_count_change_moves_the_data_into_the_other_shard_set():
    cluster = MemoryCluster()
    run(cluster, 5)
    cluster.settle()
    body = scalestage(5, cluster.status)
    body["spec"]["database"] = {"shards": 3}

    def again():
        cluster.writes = 0
        return reconcile.reconcile(cluster, {**body, "status": cluster.status})

    again()  # provisioning: three new shards beside the two old ones
    migration = cluster.status["migration"]
    assert (migration["fromShards"], migration["toShards"]) == (2, 3)
    assert (migration["fromShardSet"], migration["toShardSet"]) == ("", "b")
    primaries = [n for n in names_of(cluster, "StatefulSet") if n.endswith("-primary")]
    assert primaries == ["chirp-db-b-shard-0-primary", "chirp-db-b-shard-1-primary",
                         "chirp-db-b-shard-2-primary", "chirp-db-shard-0-primary",
                         "chirp-db-shard-1-primary"]
    cluster.settle()
    again()
    [job] = names_of(cluster, "Job")
    assert job == "chirp-move-5x2-5x3b-run"
    args = cluster.objects[("Job", job)]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[3].count(",") == 1 and args[5].count(",") == 2 and "db-b-shard-2-rw" in args[5]
    cluster.finish_job(job)
    again()  # switching: the web pods now get the three new shards' URLs
    env = cluster.objects[("Deployment", "chirp-web")]["spec"]["template"]["spec"][
        "containers"][0]["env"]
    [urls] = [e["value"] for e in env if e["name"] == "CHIRP_SHARD_URLS"]
    assert urls.count("db-b-shard-") == 3
    cluster.settle()
    again()
    cluster.finish_job("chirp-move-5x2-5x3b-complete")
    again()  # retiring
    again()  # done
    assert cluster.status["stage"] == 5 and "migration" not in cluster.status
    assert cluster.status["spofs"] == ["db-b-shard-0-primary", "db-b-shard-1-primary",
                                       "db-b-shard-2-primary", "redis"]
    assert not [n for n in names_of(cluster, "StatefulSet") if n.startswith("chirp-db-shard-")]
    cluster.settle()
    again()  # stays on the b set, in place
    assert cluster.status["phase"] == "Ready" and names_of(cluster, "Job") == []


def test_one_lock_per_object():
    operator = Operator(resources={})
    assert operator.lock("demo", "chirp") is operator.lock("demo", "chirp")
    assert operator.lock("demo", "chirp") is not operator.lock("demo", "blog")
    assert operator.lock("demo", "chirp") is not operator.lock("other", "chirp")


def test_default_images_come_from_the_environment():
    environ = {"SCALESTAGE_IMAGE_APP": "example/chirp:1", "SCALESTAGE_IMAGE_REDIS": "",
               "UNRELATED": "x"}
    assert reconcile.default_images_from(environ) == {"app": "example/chirp:1"}


def affinity(cluster, service):
    return cluster.objects[("Service", service)]["spec"]["sessionAffinity"]


def test_3_to_4_keeps_client_affinity_until_the_web_pods_have_rolled():
    cluster = MemoryCluster()
    run(cluster, 3)
    cluster.settle()
    run(cluster, 4, cluster.status)  # the web pods roll to Redis sessions: stay pinned meanwhile
    assert affinity(cluster, "chirp-web") == affinity(cluster, "chirp") == "ClientIP"
    cluster.settle()
    run(cluster, 4, cluster.status)  # rolled: stage 4 drops the affinity (no pod restarts)
    assert affinity(cluster, "chirp-web") == affinity(cluster, "chirp") == "None"


def test_2_to_1_keeps_the_web_pods_serving_until_the_monolith_is_ready():
    cluster = copying(2, 1)
    cluster.finish_job("chirp-move-2-1-run")
    cluster.objects[("StatefulSet", "chirp-monolith")]["status"] = {}  # its pod restarting
    run(cluster, 1, cluster.status)  # switching, the monolith not ready: web still answers
    assert cluster.status["migration"]["step"] == "switching"
    assert front_door_component(cluster) == "web"
    assert "chirp-web" in names_of(cluster, "Deployment")
    cluster.settle()
    run(cluster, 1, cluster.status)
    assert front_door_component(cluster) == "monolith"
    assert names_of(cluster, "Deployment") == []


def test_4_to_3_keeps_redis_until_the_web_pods_no_longer_use_it():
    cluster = MemoryCluster()
    run(cluster, 4)
    cluster.settle()
    run(cluster, 3, cluster.status)  # the web pods roll back to process sessions
    assert "chirp-redis" in names_of(cluster, "Deployment")
    assert "chirp-netpol-redis" in names_of(cluster, "NetworkPolicy")  # and still reach it
    assert web_reaches_redis(cluster)
    cluster.settle()
    down = run(cluster, 3, cluster.status)  # rolled: Redis goes, and the paths to it
    assert "chirp-redis" not in names_of(cluster, "Deployment")
    assert sorted(down.pruned) == [
        "Deployment/chirp-redis", "NetworkPolicy/chirp-netpol-redis", "Service/chirp-redis"]
    assert not web_reaches_redis(cluster)


def web_reaches_redis(cluster):
    """The web pods' policy lets them out to the Redis pods."""
    egress = cluster.objects[("NetworkPolicy", "chirp-netpol-web")]["spec"]["egress"]
    return any(peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "redis"
               for rule in egress for peer in rule.get("to", []) if "podSelector" in peer)


def someone_elses(kind, name, uid="u-2", owner="chirp-web"):
    """An object of another ScaleStage (`chirp-web`, whose front door is Service chirp-web)."""
    return {"apiVersion": "v1", "kind": kind, "metadata": {
        "name": name, "namespace": "demo", "labels": {"app.kubernetes.io/instance": owner},
        "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ScaleStage", "name": owner,
                             "uid": uid, "controller": True}]}}


def test_a_childs_name_held_by_another_owner_is_left_alone_until_it_is_free():
    cluster = MemoryCluster()
    theirs = someone_elses("Service", "chirp-web")
    cluster.objects[("Service", "chirp-web")] = copy.deepcopy(theirs)
    held = run(cluster, 2)
    assert held.action == "held" and held.applied == [] and held.pruned == []
    assert cluster.objects == {("Service", "chirp-web"): theirs}  # nothing of ours, theirs as is
    assert cluster.writes == 1  # the status only
    assert cluster.status["phase"] == "Failed" and "stage" not in cluster.status
    ready = next(c for c in cluster.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NameTaken")
    [event] = held.events
    assert (event.type, event.reason) == ("Warning", "NameTaken")
    assert "Service/chirp-web exists already, controlled by ScaleStage chirp-web (uid u-2)" in (
        event.message)

    again = run(cluster, 2, cluster.status)  # said once; an idle held pass writes nothing
    assert (again.events, cluster.writes) == ([], 0)

    del cluster.objects[("Service", "chirp-web")]  # the other one goes: the name is free
    free = run(cluster, 2, cluster.status)
    assert free.action == "create" and "Service/chirp-web" in free.applied
    assert cluster.status["stage"] == 2 and cluster.status["phase"] != "Failed"
    ready = next(c for c in cluster.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] != "NameTaken"


def test_a_name_taken_on_the_way_to_the_next_stage_stops_the_walk_without_a_write():
    cluster = MemoryCluster()
    run(cluster, 3)
    cluster.settle()
    run(cluster, 3, cluster.status)
    assert cluster.status["phase"] == "Ready"
    before = copy.deepcopy(cluster.objects)
    cluster.objects[("Service", "chirp-redis")] = someone_elses("Service", "chirp-redis",
                                                                owner="chirp-redis")
    held = run(cluster, 4, cluster.status)
    assert held.action == "held" and cluster.writes == 1
    assert {k: v for k, v in cluster.objects.items() if k != ("Service", "chirp-redis")} == before
    assert cluster.status["phase"] == "Failed" and cluster.status["stage"] == 3
    assert cluster.status["progress"] == "name taken: Service/chirp-redis"


def web_pod(name, seen=None, deleting=False):
    meta = {"name": name, "annotations": {ARCHITECTURE_SEEN: seen} if seen else {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-29T06:00:00Z"
    return {"kind": "Pod", "metadata": meta}


def test_a_changed_architecture_document_is_pushed_to_the_running_web_pods_once():
    cluster = MemoryCluster()
    run(cluster, 2)
    cluster.settle()
    run(cluster, 2, cluster.status)
    version_2 = cluster.objects[("ConfigMap", "chirp-architecture")]["metadata"]["annotations"][
        APPLIED_HASH]
    cluster.objects.update({("Pod", p["metadata"]["name"]): p for p in (
        web_pod("web-a", seen=version_2), web_pod("web-b"), web_pod("web-c", deleting=True))})
    assert run(cluster, 2, cluster.status).applied == [] and cluster.writes == 0

    run(cluster, 3, cluster.status)  # 2 -> 3 changes only the document for the kept pods
    version_3 = cluster.objects[("ConfigMap", "chirp-architecture")]["metadata"]["annotations"][
        APPLIED_HASH]
    assert version_3 != version_2
    seen = {name: (pod["metadata"].get("annotations") or {}).get(ARCHITECTURE_SEEN)
            for (kind, name), pod in cluster.objects.items() if kind == "Pod"}
    assert seen == {"web-a": version_3, "web-b": version_3, "web-c": None}  # not a going pod

    cluster.settle()
    run(cluster, 3, cluster.status)
    assert run(cluster, 3, cluster.status).applied == [] and cluster.writes == 0
