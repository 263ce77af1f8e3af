"""Fixtures of the e2e tier: a real kind cluster (`make cluster`), real pods (kindcluster.py)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from kubernetes import client, config

from tests.e2e.kindcluster import CLUSTER, CONTEXT, REPO_ROOT, TEST_IMAGE, Cluster


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
