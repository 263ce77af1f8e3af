"""The architecture page's access on a real API server: with the token of the account the
operator builds for the web pods (specs/access.py), the app's own reader (chirp.web.live_cluster)
reads this instance's pods, ScaleStage and architecture ConfigMap, and nothing else."""

from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chirp.web.live_cluster import ClusterReader
from chirp.web.live_model import page_model
from scalestage import stages
from scalestage.names import Names
from scalestage.specs import access, architecture

INSTANCE = "chirp"


def client_with_token(control_plane, token: str, path: Path) -> client.ApiClient:
    kubeconfig = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    kubeconfig["users"] = [{"name": "page", "user": {"token": token}}]
    kubeconfig["contexts"][0]["context"]["user"] = "page"
    path.write_text(yaml.safe_dump(kubeconfig))
    return config.new_client_from_config(config_file=str(path))


@pytest.fixture
def reader(api, crd, kube, control_plane, namespace, tmp_path):
    """What a web pod of instance `chirp` at stage 3 sees: the operator's access objects and
    document applied as it applies them, a web pod (Pending: no kubelet here), another
    instance's ScaleStage and a Secret it must not read."""
    plan, names = stages.resolve({"stage": 3}), Names(INSTANCE)
    kube.create(namespace, INSTANCE, {"stage": 3})
    kube.create(namespace, "other", {"stage": 2})
    for manifest in access.build(plan, names) + architecture.build(plan, names):
        manifest["metadata"]["namespace"] = namespace
        kube.server_side_apply(manifest, "test")
    core = client.CoreV1Api(api)
    labels = architecture.selector(names, "web")
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "chirp-web-abc12", "labels": labels},
        "spec": {**access.pod_fields(names),
                 "containers": [{"name": "web", "image": "scalestage/chirp:dev"}]}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "chirp-credentials"},
                                              "stringData": {"password": "x"}})
    token = core.create_namespaced_service_account_token(
        access.account(names), namespace, {"spec": {"expirationSeconds": 600}}).status.token
    page_client = client_with_token(control_plane, token, tmp_path / "page.kubeconfig")
    return ClusterReader(namespace, page_client), page_client, namespace, plan, names


def test_the_page_reads_its_pods_scalestage_and_document(reader):
    read, _, _, plan, names = reader
    observed = read.read(INSTANCE)
    assert observed.problem is None and observed.live
    assert [p["metadata"]["name"] for p in observed.pods] == ["chirp-web-abc12"]
    assert observed.scalestage["spec"]["stage"] == 3
    assert observed.document == architecture.document(plan, names)
    model = page_model(observed.document, stage=3, pods=observed.pods, live=True)
    web = next(c for c in model["components"] if c["name"] == "web")
    assert [(p["name"], p["state"]) for p in web["pods"]] == [("chirp-web-abc12", "not-ready")]


def test_nothing_else(reader):
    read, page_client, namespace, _, _ = reader
    assert read.read("other").problem == "the Kubernetes API answered 403 Forbidden"
    core = client.CoreV1Api(page_client)
    for call in (lambda: core.read_namespaced_secret("chirp-credentials", namespace),
                 lambda: core.list_namespaced_secret(namespace),
                 lambda: core.delete_namespaced_pod("chirp-web-abc12", namespace),
                 lambda: core.list_namespaced_config_map(namespace),
                 lambda: core.list_pod_for_all_namespaces()):
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403
