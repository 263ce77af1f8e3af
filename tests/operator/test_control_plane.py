"""The test control plane is a real one: schema and CEL validation, controllers, garbage
collection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures.controlplane import ControlPlane
from tests.polling import wait_until

REPO = Path(__file__).resolve().parents[2]

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.scalestage.dev"},
    "spec": {
        "group": "test.scalestage.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 5},
                                    "mirrors": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "!has(self.mirrors) || self.mirrors < self.size",
                                        "message": "mirrors must be fewer than size",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_starts_quickly_and_reports_its_version(control_plane):
    version = client.VersionApi(control_plane.api_client()).get_code()
    print(f"control plane up in {control_plane.startup_seconds:.1f}s, {version.git_version}")
    assert version.git_version.startswith("v1.34."), version.git_version


def test_kubectl_uses_the_same_kubeconfig(control_plane):
    out = control_plane.kubectl("get", "namespaces", "-o", "name").stdout
    assert "namespace/kube-system" in out


def test_crd_schema_and_cel_rule_are_enforced(control_plane, namespace):
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(WIDGET_CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.test.scalestage.dev", "--timeout=30s"
    )

    def widget(name: str, **spec) -> str:
        return yaml.safe_dump(
            {"apiVersion": "test.scalestage.dev/v1", "kind": "Widget",
             "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        )

    ok = control_plane.kubectl("apply", "-f", "-", input=widget("ok", size=3, mirrors=2))
    assert "created" in ok.stdout

    too_big = control_plane.kubectl("apply", "-f", "-", input=widget("big", size=7), check=False)
    assert too_big.returncode != 0
    assert "should be less than or equal to 5" in too_big.stderr

    cel = control_plane.kubectl("apply", "-f", "-", input=widget("cel", size=2, mirrors=2),
                                check=False)
    assert cel.returncode != 0
    assert "mirrors must be fewer than size" in cel.stderr


def test_deployment_becomes_replicaset_and_pods(control_plane, namespace):
    apps = client.AppsV1Api(control_plane.api_client())
    core = client.CoreV1Api(control_plane.api_client())
    labels = {"app": "hello"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="hello"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="c", image="busybox")]),
                ),
            ),
        ),
    )
    replica_sets = wait_until(
        lambda: apps.list_namespaced_replica_set(namespace, label_selector="app=hello").items,
        what="the Deployment's ReplicaSet",
    )
    assert replica_sets[0].metadata.owner_references[0].kind == "Deployment"
    pods = wait_until(
        lambda: (items := core.list_namespaced_pod(namespace, label_selector="app=hello").items)
        and len(items) == 3 and items,
        what="3 pods from the ReplicaSet",
    )
    assert {p.metadata.owner_references[0].name for p in pods} == {replica_sets[0].metadata.name}


def test_deleting_an_owner_garbage_collects_its_dependents(control_plane, namespace):
    core = client.CoreV1Api(control_plane.api_client())
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    for i in range(2):
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"dependent-{i}",
                                                            owner_references=[reference])),
        )
    core.delete_namespaced_config_map("owner", namespace)

    def dependents_gone() -> bool:
        names = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        return not names & {"dependent-0", "dependent-1"}

    wait_until(dependents_gone, what="garbage collection of the dependents")


def test_audit_log_records_write_calls(control_plane, namespace):
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="audited"))
    )
    core.read_namespaced_config_map("audited", namespace)  # a read: must not be logged

    def write_events():
        return [
            e for e in control_plane.audit_events()
            if e.get("objectRef", {}).get("namespace") == namespace
            and e.get("objectRef", {}).get("name") == "audited"
        ]

    events = wait_until(write_events, what="the audit event of the create")
    assert {e["verb"] for e in events} == {"create"}


def test_unknown_objects_are_refused_by_the_server(control_plane, namespace):
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(control_plane.api_client()).create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_A_Valid_Name"))
        )
    assert error.value.status == 422


def test_leaves_no_process_behind(tmp_path):
    """A second, short-lived control plane: after it stops, none of its processes remain."""
    with ControlPlane(tmp_path / "cp") as plane:
        pids = [c.process.pid for c in plane.components]
        assert all(c.process.poll() is None for c in plane.components)
    for pid in pids:
        result = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True,
                                text=True)
        assert result.stdout.strip() == "", f"process {pid} still there: {result.stdout}"


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_servers_die_with_a_killed_test_process():
    """What keeps a SIGKILLed test run from leaving its servers (and operators) behind."""
    script = ("import functools, os, subprocess, time\n"
              "from tests.fixtures.controlplane import die_with\n"
              "child = subprocess.Popen(['sleep', '300'],"
              " preexec_fn=functools.partial(die_with, os.getpid()))\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(300)\n")
    test_process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                    text=True, cwd=REPO)
    server = int(test_process.stdout.readline())
    assert running(server)
    test_process.kill()
    test_process.wait()
    wait_until(lambda: not running(server), timeout=10, what="the server gone with its parent")
