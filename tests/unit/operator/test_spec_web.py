"""Web builder: Deployment + Service from stage 2; sticky sessions at stages 2-3; one pod
template for stages 2 and 3."""

import pytest

from scalestage import stages
from scalestage.names import Names
from scalestage.specs import app, frontdoor, web


def test_absent_at_stage_1(plan, names):
    assert web.build(plan(1), names) == []


@pytest.mark.parametrize("stage, replicas", [(2, 1), (3, 3), (4, 3), (5, 3)])
def test_default_replicas(plan, names, stage, replicas):
    deployment, _ = web.build(plan(stage), names)
    assert deployment["spec"]["replicas"] == replicas


def test_replicas_override(plan, names):
    deployment, _ = web.build(plan(4, web={"replicas": 7}), names)
    assert deployment["spec"]["replicas"] == 7


@pytest.mark.parametrize("stage, affinity",
                         [(2, "ClientIP"), (3, "ClientIP"), (4, "None"), (5, "None")])
def test_client_ip_affinity_only_while_sessions_live_in_the_process(plan, names, stage, affinity):
    _, svc = web.build(plan(stage), names)
    assert svc["spec"]["sessionAffinity"] == affinity


@pytest.mark.parametrize("stage", [2, 3, 4])
def test_the_front_door_and_the_web_service_agree_on_affinity(plan, names, stage):
    """Both lead to the web pods at stages 2-4: a client pinned by one is pinned by the other."""
    _, svc = web.build(plan(stage), names)
    [door] = frontdoor.build(plan(stage), names)
    assert door["spec"]["selector"] == svc["spec"]["selector"]
    assert door["spec"]["sessionAffinity"] == svc["spec"]["sessionAffinity"]


def test_stages_2_and_3_run_the_same_web_pod_template():
    """2 -> 3 only adds web pods and 3 -> 2 only removes them: the pod holding sessions (in its
    process at both stages) is never restarted by a rollout."""
    two, three = (stages.resolve({"stage": n}) for n in (2, 3))
    template_2 = web.build(two, Names("chirp"))[0]["spec"]["template"]
    template_3 = web.build(three, Names("chirp"))[0]["spec"]["template"]
    assert template_2 == template_3
    assert (two.web_replicas, three.web_replicas) == (1, 3)


def test_web_pods_read_the_architecture_document_from_the_mounted_configmap(plan, names, env_of):
    deployment, _ = web.build(plan(3), names)
    pod = deployment["spec"]["template"]["spec"]
    # the whole ConfigMap, no subPath: the kubelet updates its files in place
    assert pod["volumes"] == [{"name": "architecture",
                               "configMap": {"name": "chirp-architecture"}}]
    for container in pod["initContainers"] + pod["containers"]:
        assert container["volumeMounts"] == [{"name": "architecture",
                                              "mountPath": "/etc/chirp/architecture",
                                              "readOnly": True}]
        e = env_of(container)
        assert e["CHIRP_ARCHITECTURE_FILE"] == "/etc/chirp/architecture/architecture.json"
        assert "CHIRP_ARCHITECTURE" not in e and "CHIRP_STAGE" not in e


def test_service_targets_the_web_port(plan, names):
    deployment, svc = web.build(plan(3), names)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items())


def test_migrates_before_serving(plan, names):
    deployment, _ = web.build(plan(2), names)
    pod = deployment["spec"]["template"]["spec"]
    assert [c["args"][0] for c in pod["initContainers"]] == ["migrate"]
    assert [c["args"] for c in pod["containers"]] == [["web"]]


def test_grace_period_covers_the_prestop_sleep_and_graceful_stop(plan, names):
    deployment, _ = web.build(plan(3), names)
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep == app.DRAIN_SECONDS > 0
    assert pod["terminationGracePeriodSeconds"] > sleep + 30  # gunicorn's graceful timeout


def test_web_pods_spread_over_nodes(plan, names):
    deployment, _ = web.build(plan(3), names)
    (rule,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    assert rule["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_rolls_without_losing_capacity(plan, names):
    deployment, _ = web.build(plan(3), names)
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_non_root(plan, names):
    pod = web.build(plan(3), names)[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
