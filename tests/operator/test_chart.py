"""The Helm chart: lint, render both RBAC modes, refuse bad values, and run the operator on a real
API server with exactly the namespaced Role the chart grants (least privilege that suffices)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.operator.expected_children import EXPECTED_CHILDREN
from tests.polling import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "scalestage-operator"
HELM = REPO / ".tools" / "bin" / "helm"
RELEASE = "scalestage-operator"  # every object the chart renders is named after the release

helm_path = str(HELM) if HELM.exists() else shutil.which("helm")
pytestmark = pytest.mark.skipif(not helm_path, reason="helm not built yet (make tools)")


def helm(*args, check=True):
    return subprocess.run([helm_path, *args], capture_output=True, text=True, check=check,
                          timeout=60)


def render(*sets, namespace="ops"):
    out = helm("template", RELEASE, str(CHART), "--namespace", namespace,
               *[a for s in sets for a in ("--set", s)]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(docs):
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def find(docs, kind, name=RELEASE):
    """The one rendered object of this kind and name, whichever file and place it comes in."""
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def args_of(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_lint_is_clean():
    for values in ([], ["--set", "watchNamespace=ops"]):
        result = helm("lint", "--strict", str(CHART), *values, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_wide_by_default():
    docs = render()
    assert kinds(docs) == [
        "ClusterRole/scalestage-operator", "ClusterRoleBinding/scalestage-operator",
        "Deployment/scalestage-operator", "ServiceAccount/scalestage-operator"]
    assert "--all-namespaces" in args_of(find(docs, "Deployment"))


def test_one_namespace_gets_a_namespaced_role():
    docs = render("watchNamespace=ops")
    assert kinds(docs) == ["Deployment/scalestage-operator", "Role/scalestage-operator",
                           "RoleBinding/scalestage-operator", "ServiceAccount/scalestage-operator"]
    assert find(docs, "Role")["metadata"]["namespace"] == "ops"
    assert "--namespace=ops" in args_of(find(docs, "Deployment"))


def test_operator_pod_is_non_root_and_gets_default_images():
    deployment = find(render("defaultImages.app=example/chirp:1"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SCALESTAGE_IMAGE_APP"] == "example/chirp:1"
    assert env["SCALESTAGE_IMAGE_POSTGRES"] == "scalestage/postgres:15"


@pytest.mark.parametrize("bad", ["resyncSeconds=0", "image.pullPolicy=Sometimes",
                                 "watchNamespace=Not_A_Namespace", "surprise=1",
                                 "logLevel=loud"])
def test_values_schema_refuses_bad_values(bad):
    result = helm("template", "scalestage", str(CHART), "--set", bad, check=False)
    assert result.returncode != 0 and "values don't meet the specifications" in result.stderr


def test_every_value_is_documented():
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")):  # a top-level key
            assert lines[i - 1].lstrip().startswith("#"), f"undocumented value: {line}"


def test_crd_is_shipped_in_crds():
    [crd] = yaml.safe_load_all((CHART / "crds" / "scalestages.scalestage.dev.yaml").read_text())
    assert crd["metadata"]["name"] == "scalestages.scalestage.dev"
    assert helm("show", "crds", str(CHART)).stdout.count("kind: CustomResourceDefinition") == 1


@pytest.mark.slow
def test_operator_works_with_only_the_charts_namespaced_role(
    control_plane, api, crd, kube, start_operator, namespace, tmp_path
):
    # The chart's ServiceAccount, Role and RoleBinding, applied as rendered; the binding grants
    # exactly that Role to exactly that account.
    docs = render(f"watchNamespace={namespace}", namespace=namespace)
    account, role, binding = (find(docs, kind)
                              for kind in ("ServiceAccount", "Role", "RoleBinding"))
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": namespace}]
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [account, role, binding]}))
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        account["metadata"]["name"], namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    admin["users"] = [{"name": "operator", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "operator"
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(admin))

    operator = start_operator(kubeconfig, f"--namespace={namespace}")
    kube.create(namespace, "chirp", {"stage": 4})
    try:
        wait_until(lambda: kube.children(namespace) == EXPECTED_CHILDREN[4], timeout=40,
                   what="stage 4 children made by the least-privileged operator")
        wait_until(lambda: (kube.get(namespace, "chirp").get("status") or {}).get("stage") == 4,
                   what="status written")
        wait_until(lambda: "StageChanged" in {e["reason"] for e in kube.list("Event", namespace)},
                   what="event posted")
        # Deleting it takes the Role too: kopf removes its finalizer.
        kube.delete(namespace, "chirp")
        wait_until(lambda: kube.get(namespace, "chirp") is None, what="the ScaleStage deleted")
    except WaitTimeout as error:
        raise WaitTimeout(f"{error}\noperator log:\n{operator.log()[-3000:]}") from None
    # "(403)" as the client prints it: a bare "403" also matches log timestamps such as ",403]"
    assert "Forbidden" not in operator.log() and "(403)" not in operator.log()
