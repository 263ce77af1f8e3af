"""Fixtures of the e2e tier: a real kind cluster (`make cluster`), real pods (kindcluster.py)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from kubernetes import client, config

from tests.e2e.kindcluster import CLUSTER, CONTEXT, REPO_ROOT, TEST_IMAGE, Cluster, tool

RELEASE = "scalestage-operator"
OPERATOR_NAMESPACE = "scalestage-system"
CHART = REPO_ROOT / "charts" / "scalestage-operator"
# Every image a stage runs, loaded into the cluster before the operator is installed.
IMAGES = ("scalestage/operator:dev", "scalestage/chirp:dev", "scalestage/postgres:15",
          "scalestage/redis:7", "scalestage/edge:1")


@pytest.fixture(scope="session")
def kind_cluster() -> Cluster:
    if os.environ.get("SCALESTAGE_E2E_SKIP_UP") != "1":
        started = time.monotonic()
        subprocess.run([str(REPO_ROOT / "hack" / "cluster.sh"), "up"], check=True, timeout=1800)
        subprocess.run([str(REPO_ROOT / "hack" / "cluster.sh"), "load", TEST_IMAGE], check=True,
                       timeout=600)
        print(f"\ncluster {CLUSTER} ready for e2e in {time.monotonic() - started:.0f} s")
    api = config.new_client_from_config(context=CONTEXT)
    return Cluster(CONTEXT, client.CoreV1Api(api), client.AppsV1Api(api))


@pytest.fixture(scope="module")
def namespace(kind_cluster: Cluster):
    """A fresh namespace for one module; deleted afterwards and waited for until it is gone."""
    name = kind_cluster.create_namespace(f"e2e-{uuid.uuid4().hex[:6]}")
    yield name
    kind_cluster.delete_namespace(name)


def run(*cmd: str, timeout: float = 600) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def say(request):
    """report() for session- and module-scoped fixtures (capsys is function-scoped)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def report_now(message: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"\n    [e2e] {message}")
    return report_now


@pytest.fixture(scope="session")
def operator(kind_cluster: Cluster, say) -> str:
    """The operator, installed (or upgraded) by helm exactly as a user would, and running."""
    started = time.monotonic()
    run(str(REPO_ROOT / "hack" / "cluster.sh"), "load", *IMAGES)
    # helm installs crds/ only on first install; apply it so a changed CRD reaches the cluster
    kind_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    image_id = run("docker", "image", "inspect", "-f", "{{.Id}}", IMAGES[0]).strip()[7:19]
    run(tool("helm"), "--kube-context", kind_cluster.context, "upgrade", "--install", RELEASE,
        str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout", "5m",
        # same tag after a rebuild: a changed image id rolls the operator pod
        "--set-string", f"podAnnotations.scalestage\\.dev/image-id={image_id}")
    kind_cluster.kubectl("rollout", "status", "-n", OPERATOR_NAMESPACE, f"deployment/{RELEASE}",
                         "--timeout=180s")
    say(f"operator loaded and installed by helm in {time.monotonic() - started:.0f} s")
    return OPERATOR_NAMESPACE


@pytest.fixture(scope="module")
def client_pod(kind_cluster: Cluster):
    """A long-lived pod to send requests from, in its own namespace."""
    namespace = kind_cluster.create_namespace(f"e2e-client-{uuid.uuid4().hex[:6]}")
    kind_cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                 "containers": [{"name": "client", "image": TEST_IMAGE, "imagePullPolicy": "Never",
                                 "command": ["sleep", "infinity"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]},
    }, namespace=namespace)
    kind_cluster.kubectl("wait", "-n", namespace, "pod/client", "--for=condition=Ready",
                         "--timeout=180s")
    yield namespace
    kind_cluster.delete_namespace(namespace)
