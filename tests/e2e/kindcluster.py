"""Helpers of the e2e tier: the kind cluster as tests see it.

The `kind_cluster` fixture (conftest.py) makes sure the cluster "scalestage" exists (creating it,
or reusing and restarting it, through hack/cluster.sh exactly as `make cluster` does) and loads
the locally built test image into it with `kind load docker-image`. Tests talk to it through the
kubeconfig context kind-scalestage: the Python kubernetes client for state, kubectl for exec.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.controlplane import delete_namespaces

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "scalestage"
CONTEXT = f"kind-{CLUSTER}"
# built by `make images`, offline and online alike; runs python3, so it can serve and probe
TEST_IMAGE = "scalestage/python-base:3.11"


class KubectlError(AssertionError):
    """kubectl exited non-zero (its output in the message)."""


# What a poll of the cluster may meet while it settles, and so counts as "not yet": the API
# server briefly away (a node restarting), a pod that cannot be exec'ed into yet. Anything else
# fails the test at once. For tests.polling.wait_until(..., tolerate=TRANSIENT).
TRANSIENT = (ApiException, urllib3.exceptions.HTTPError, OSError, KubectlError)


def tool(name: str) -> str:
    path = REPO_ROOT / ".tools" / "bin" / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: run `make tools`")
    return found


@dataclass
class Cluster:
    context: str
    core: client.CoreV1Api
    apps: client.AppsV1Api

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        cmd = [tool("kubectl"), "--context", self.context, *args]
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise KubectlError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def apply(self, *manifests: dict, namespace: str | None = None) -> None:
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", input=doc)

    def show(self, namespace: str, resources: str) -> None:
        """Print the resources and the namespace's events: what a failed wait leaves to read."""
        for what in ([resources, "-o", "wide"], ["events", "--sort-by=.lastTimestamp"]):
            print(self.kubectl("get", "-n", namespace, *what))

    def exec(self, namespace: str, pod: str, *command: str, timeout: float = 60) -> str:
        return self.kubectl("exec", "-n", namespace, pod, "--", *command, timeout=timeout)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        """Create it, with `labels` if given (e.g. the Pod Security Standard it enforces)."""
        self.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        return name

    def delete_namespace(self, name: str, timeout: float = 300) -> None:
        """Delete it and wait until it is gone: its pods, volumes and ScaleStages went too."""
        delete_namespaces(self.core, name, timeout=timeout)

    def worker_nodes(self) -> list[str]:
        nodes = self.core.list_node(label_selector="!node-role.kubernetes.io/control-plane")
        return sorted(n.metadata.name for n in nodes.items)
