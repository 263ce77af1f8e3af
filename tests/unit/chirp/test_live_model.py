"""The live architecture page's model: the operator's document (built by the operator's own code,
so the two sides are checked against each other) plus pods as the Kubernetes API returns them."""

import pytest

from chirp.web.live_cluster import no_access_reason, parse_document
from chirp.web.live_model import matches, page_model, pod_view
from scalestage import stages
from scalestage.names import Names
from scalestage.specs import architecture


def document(stage: int) -> dict:
    return architecture.document(stages.resolve({"stage": stage}), Names("chirp"))


def pod(name: str, component: str, *, ready: bool = True, restarts: int = 0,
        deleting: bool = False, created: str = "2026-11-28T20:00:00Z", **labels: str) -> dict:
    """A pod as the API lists it (the fields the page reads)."""
    return {
        "metadata": {"name": name, "creationTimestamp": created,
                     "labels": {"app.kubernetes.io/instance": "chirp",
                                "app.kubernetes.io/component": component, **labels},
                     **({"deletionTimestamp": "2026-11-28T20:01:00Z"} if deleting else {})},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "c", "restartCount": restarts}]},
    }


def db_pod(name: str, cluster: str, role: str, **kw) -> dict:
    return pod(name, "db", **{"scalestage.dev/cluster": cluster, "scalestage.dev/role": role},
               **kw)


STAGE_3_PODS = [
    pod("chirp-web-7d9c8b6f5-aaaaa", "web"),
    pod("chirp-web-7d9c8b6f5-bbbbb", "web", restarts=2),
    pod("chirp-web-7d9c8b6f5-ccccc", "web", ready=False),
    db_pod("chirp-db-primary-0", "db", "primary"),
    db_pod("chirp-db-replica-0", "db", "replica"),
    db_pod("chirp-db-replica-1", "db", "replica", deleting=True),
    pod("other-web-1", "web") | {"metadata": {"name": "other-web-1", "labels": {
        "app.kubernetes.io/instance": "other", "app.kubernetes.io/component": "web"}}},
]


def by_name(model: dict) -> dict:
    return {c["name"]: c for c in model["components"]}


def test_each_component_gets_its_own_pods_with_ready_and_restarts():
    model = page_model(document(3), stage=3, pods=STAGE_3_PODS, live=True,
                       served={"pod": "chirp-web-7d9c8b6f5-bbbbb", "db": "replica-0"})
    web, primary, replica = (by_name(model)[n] for n in ("web", "db-primary", "db-replica"))
    assert [p["name"][-5:] for p in web["pods"]] == ["aaaaa", "bbbbb", "ccccc"]
    assert [p["state"] for p in web["pods"]] == ["ready", "ready", "not-ready"]
    assert web["ready"] == 2 and web["replicas"] == 3 and web["pods"][1]["restarts"] == 2
    assert [p["name"] for p in primary["pods"]] == ["chirp-db-primary-0"]
    # a deleted pod is shown going away, not ready, until it is gone
    assert [(p["name"], p["state"]) for p in replica["pods"]] == [
        ("chirp-db-replica-0", "ready"), ("chirp-db-replica-1", "terminating")]
    assert replica["ready"] == 1


def test_the_pod_that_served_is_marked_and_no_other():
    model = page_model(document(3), stage=3, pods=STAGE_3_PODS, live=True,
                       served={"pod": "chirp-web-7d9c8b6f5-bbbbb"})
    serving = [p["name"] for c in model["components"] for p in c["pods"] if p["serving"]]
    assert serving == ["chirp-web-7d9c8b6f5-bbbbb"]


@pytest.mark.parametrize(("stage", "spofs"), [
    (1, {"monolith"}), (3, {"db-primary"}), (5, {"db-shard-0-primary", "db-shard-1-primary",
                                                 "redis"})])
def test_spofs_are_the_documents(stage, spofs):
    model = page_model(document(stage), stage=stage)
    assert {c["name"] for c in model["components"] if c["spof"]} == spofs


def test_stage_lesson_and_arrows_follow_the_document():
    model = page_model(document(5), stage=5)
    assert model["stageName"] == "sharded"
    assert model["lesson"]["breaks"] == stages.STAGES[5].breaks
    assert model["lesson"]["nextFixes"] == stages.STAGES[5].next_fixes
    assert ("edge", "web") in {(f["from"], f["to"]) for f in model["flows"]}


def test_a_document_newer_than_the_process_start_wins():
    """The stage shown is the document's (read live from the API), not the process's start."""
    model = page_model(document(3), stage=2)
    assert (model["stage"], model["lesson"]["stage"]) == (3, 3)


def test_without_access_components_are_drawn_without_pods_and_the_reason_shown():
    model = page_model(document(3), stage=3, problem="not running in a Kubernetes cluster")
    assert model["live"] is False and model["problem"] == "not running in a Kubernetes cluster"
    assert all(c["pods"] is None and c["ready"] is None for c in model["components"])
    assert len(model["components"]) == 3


def test_without_a_document_there_is_nothing_to_draw_but_the_stage():
    model = page_model(None, stage=2, served={"pod": "p"})
    assert (model["stage"], model["described"], model["components"]) == (2, False, [])
    assert model["lesson"] is None


def test_progress_shows_a_stage_change_under_way():
    scalestage = {"spec": {"stage": 5}, "status": {"stage": 4, "phase": "Migrating"}}
    model = page_model(document(4), stage=4, scalestage=scalestage)
    assert model["progress"] == {"phase": "Migrating", "wanted": 5, "reached": 4,
                                 "message": None}


def test_restarts_count_every_container_init_sidecars_too():
    p = pod("chirp-monolith-0", "monolith", restarts=1)
    p["status"]["initContainerStatuses"] = [{"name": "postgres", "restartCount": 3}]
    assert pod_view(p)["restarts"] == 4


def test_a_pod_not_yet_scheduled_is_not_ready():
    view = pod_view({"metadata": {"name": "x"}, "status": {"phase": "Pending"}})
    assert (view["ready"], view["state"], view["restarts"]) == (False, "not-ready", 0)


def test_an_empty_selector_matches_nothing():
    assert not matches({}, {"a": "b"})
    assert matches({"a": "b"}, {"a": "b", "c": "d"}) and not matches({"a": "b"}, None)


def test_access_needs_a_cluster_and_a_token(tmp_path):
    assert no_access_reason({}, str(tmp_path)) == "not running in a Kubernetes cluster"
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    assert no_access_reason(in_cluster, str(tmp_path)) == (
        "this pod has no service account token")
    (tmp_path / "token").write_text("t")
    assert no_access_reason(in_cluster, str(tmp_path)) is None


@pytest.mark.parametrize(("text", "parsed"), [
    ('{"stage": 3}', {"stage": 3}), ("[1]", None), ("not json", None), (None, None)])
def test_the_configmaps_document_is_used_only_when_it_is_an_object(text, parsed):
    assert parse_document(text) == parsed
