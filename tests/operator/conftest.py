"""Operator tier: the real control plane (tests/fixtures/controlplane.py), the CRD from the chart,
and the operator itself running as a subprocess (`kopf run`), as it runs in a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "scalestage-operator" / "crds" / "scalestages.scalestage.dev.yaml"
GROUP, VERSION, PLURAL = "scalestage.dev", "v1alpha1", "scalestages"
RESYNC_SECONDS = 2  # the operator's drift-check period in these tests

# `control_plane` comes from tests/fixtures/controlplane.py (registered in tests/conftest.py).


def wait_until(condition, timeout=30.0, interval=0.25, message="condition"):
    """Poll `condition()` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


@pytest.fixture(scope="session")
def api(control_plane):
    """An ApiClient with admin rights on the test control plane."""
    return control_plane.api_client()


@pytest.fixture(scope="session")
def crd(api):
    """The ScaleStage CRD, installed from the chart (its one source of truth) and Established."""
    manifest = yaml.safe_load(CRD_FILE.read_text())
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(manifest)

    def established():
        got = extensions.read_custom_resource_definition(manifest["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True"
                   for c in (got.status.conditions or []))

    wait_until(established, message="CRD Established")
    # Discovery of the new group can lag Established by a moment.
    wait_until(lambda: _served(api), message="scalestages served")
    return manifest


def _served(api):
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return True
    except ApiException:
        return False


class OperatorProcess:
    """`kopf run -m scalestage.handlers` against the test control plane; its log in a file."""

    def __init__(self, kubeconfig: Path, log_path: Path, scope: tuple[str, ...] = ("--all-namespaces",)):
        self.log_path = log_path
        env = {**os.environ, "KUBECONFIG": str(kubeconfig),
               "SCALESTAGE_RESYNC_SECONDS": str(RESYNC_SECONDS), "PYTHONUNBUFFERED": "1"}
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "-m", "scalestage.handlers", "--standalone",
             *scope, "--verbose"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )

    resync_seconds = RESYNC_SECONDS

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def reconciles(self, namespace: str, name: str, trigger: str = "timer") -> int:
        """How many reconciles of one object the operator has logged so far."""
        return sum(1 for line in self.log().splitlines()
                   if f"[{namespace}/{name}]" in line and f"reconciled ({trigger})" in line)

    def check_alive(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.log()[-3000:]}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def operator_process(control_plane, crd, tmp_path_factory):
    """The operator, running for the whole session and watching every namespace."""
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(Path(control_plane.kubeconfig), log_path)
    try:
        wait_until(lambda: process.check_alive() or "Starting the main loop" in process.log()
                   or "initial listing" in process.log().lower() or _watching(process),
                   timeout=30, message="operator started")
        yield process
    finally:
        process.stop()
        if os.environ.get("SCALESTAGE_KEEP_OPERATOR_LOG"):
            print(process.log())


def _watching(process):
    return "scalestages" in process.log()


@pytest.fixture(name="start_operator")
def start_operator_fixture(tmp_path):
    """start_operator(kubeconfig, *scope): another operator process, stopped after the test."""
    started = []

    def start(kubeconfig, *scope):
        process = OperatorProcess(Path(kubeconfig), tmp_path / f"operator-{len(started)}.log",
                                  scope or ("--all-namespaces",))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def namespace(api, request):
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException:
        pass


class Kube:
    """The few calls the operator tests make, as plain dicts."""

    CHILD_KINDS = {
        "Secret": ("", "v1", "secrets"),
        "ConfigMap": ("", "v1", "configmaps"),
        "Service": ("", "v1", "services"),
        "StatefulSet": ("apps", "v1", "statefulsets"),
        "Deployment": ("apps", "v1", "deployments"),
        "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
        "PersistentVolumeClaim": ("", "v1", "persistentvolumeclaims"),
        "Pod": ("", "v1", "pods"),
        "Event": ("", "v1", "events"),
    }

    def __init__(self, api):
        self.api = api
        self.custom = client.CustomObjectsApi(api)

    def create(self, namespace, name, spec, **kwargs):
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaleStage",
                "metadata": {"name": name}, "spec": spec}
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body,
                                                           **kwargs)

    def get(self, namespace, name):
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def patch_spec(self, namespace, name, spec):
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": spec},
            _content_type="application/merge-patch+json")

    def delete(self, namespace, name):
        return self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def raw(self, method, path, body=None, content_type="application/json", query=None):
        request = self.api.param_serialize(
            method, path, query_params=query or [], body=body,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self.api.call_api(*request)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(
                http_resp=response, body=response.data.decode(errors="replace"), data=None)
        return json.loads(response.data or b"{}")

    def path(self, kind, namespace, name=None):
        group, version, plural = self.CHILD_KINDS[kind]
        root = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        return f"{root}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")

    def list(self, kind, namespace, selector=None):
        query = [("labelSelector", selector)] if selector else []
        return self.raw("GET", self.path(kind, namespace), query=query)["items"]

    def read(self, kind, namespace, name):
        try:
            return self.raw("GET", self.path(kind, namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def children(self, namespace, instance):
        """{"Kind/name"} of every object the operator manages for one instance."""
        selector = f"app.kubernetes.io/instance={instance},app.kubernetes.io/managed-by=scalestage-operator"
        return {f"{kind}/{obj['metadata']['name']}"
                for kind in ("Secret", "ConfigMap", "Service", "StatefulSet", "Deployment",
                             "PodDisruptionBudget")
                for obj in self.list(kind, namespace, selector)}


@pytest.fixture(name="wait_until", scope="session")
def wait_until_fixture():
    """wait_until(condition, timeout=30, message=...): poll until condition() is truthy."""
    return wait_until


@pytest.fixture(scope="session")
def kube(api):
    return Kube(api)
