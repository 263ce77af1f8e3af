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
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "scalestage"
CONTEXT = f"kind-{CLUSTER}"
# built by `make images`, offline and online alike; runs python3, so it can serve and probe
TEST_IMAGE = "scalestage/python-base:3.11"


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
            raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def apply(self, *manifests: dict, namespace: str | None = None) -> None:
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", input=doc)

    def exec(self, namespace: str, pod: str, *command: str, timeout: float = 60) -> str:
        return self.kubectl("exec", "-n", namespace, pod, "--", *command, timeout=timeout)

    def worker_nodes(self) -> list[str]:
        nodes = self.core.list_node(label_selector="!node-role.kubernetes.io/control-plane")
        return sorted(n.metadata.name for n in nodes.items)


def wait_for(what: str, check, timeout: float = 120, interval: float = 1.0):
    """Poll check() until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the API may be briefly unavailable (node restarts)
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
