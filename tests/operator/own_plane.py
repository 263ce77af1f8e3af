"""A control plane of a module's own, for tests that must know which operator acts on it.

The session's control plane may have the session's operator (`operator_process`, watching every
namespace) running beside a test's own: a test that kills its operator mid-reconcile, counts the
calls one service account makes, or deletes ScaleStages with no operator running would see that
one finish the work. A module imports these fixtures to replace the session's for its tests:

    from tests.operator.own_plane import (  # noqa: F401  (fixtures, found by their names)
        own_api, own_control_plane, own_crd, own_deleted_namespaces, own_kube)

`namespace` and `start_operator` (conftest.py) then work on this plane. A module may set
`AUDIT_POLICY` to change what the API server's audit log records.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from kubernetes import client

from tests.fixtures.controlplane import AUDIT_POLICY, ControlPlane
from tests.operator.conftest import DeletedNamespaces, Kube, install_crd


@pytest.fixture(name="control_plane", scope="module")
def own_control_plane(request):
    """etcd + kube-apiserver + kube-controller-manager for this module only."""
    workdir = Path(tempfile.mkdtemp(prefix="scalestage-own-cp-"))
    try:
        with ControlPlane(workdir, audit_policy=getattr(request.module, "AUDIT_POLICY",
                                                        AUDIT_POLICY)) as plane:
            yield plane
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(name="api", scope="module")
def own_api(control_plane):
    return control_plane.api_client()


@pytest.fixture(name="crd", scope="module")
def own_crd(api):
    return install_crd(api)


@pytest.fixture(name="kube", scope="module")
def own_kube(api):
    return Kube(api)


@pytest.fixture(name="deleted_namespaces", scope="module")
def own_deleted_namespaces(api):
    namespaces = DeletedNamespaces(client.CoreV1Api(api))
    yield namespaces
    namespaces.wait_gone()

