"""Operator tier: the real control plane (tests/fixtures/controlplane.py), the CRD from the chart,
and the operator itself running as a subprocess (`kopf run`), as it runs in a cluster."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from scalestage import apply
from scalestage.names import API_VERSION, GROUP, PLURAL, VERSION, Names
from tests.fixtures.controlplane import delete_namespaces, die_with
from tests.fixtures.processes import processes_mentioning
from tests.operator.expected_children import INSTANCE
from tests.polling import wait_until

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "scalestage-operator" / "crds" / "scalestages.scalestage.dev.yaml"
RESYNC_SECONDS = 2  # the operator's drift-check period in these tests
HANDLERS = "scalestage.handlers"  # the module `kopf run` loads: in every operator's command line

# `control_plane` comes from tests/fixtures/controlplane.py (registered in tests/conftest.py).


@pytest.fixture(scope="session")
def api(control_plane):
    """An ApiClient with admin rights on the test control plane."""
    return control_plane.api_client()


def install_crd(api) -> dict:
    """The ScaleStage CRD, installed from the chart (its one source of truth), Established and
    served."""
    manifest = yaml.safe_load(CRD_FILE.read_text())
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(manifest)

    def established():
        got = extensions.read_custom_resource_definition(manifest["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True"
                   for c in (got.status.conditions or []))

    wait_until(established, what="CRD Established")
    # Discovery of the new group can lag Established by a moment.
    custom = client.CustomObjectsApi(api)
    wait_until(lambda: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL),
               what="scalestages served", tolerate=(ApiException,))
    return manifest


@pytest.fixture(scope="session")
def crd(api):
    return install_crd(api)


class OperatorProcess:
    """`kopf run -m scalestage.handlers` against the test control plane; its log in a file."""

    resync_seconds = RESYNC_SECONDS
    pids: set[int] = set()  # of every operator this session started

    def __init__(self, kubeconfig: Path, log_path: Path,
                 scope: tuple[str, ...] = ("--all-namespaces",)):
        self.log_path = log_path
        env = {**os.environ, "KUBECONFIG": str(kubeconfig),
               "SCALESTAGE_RESYNC_SECONDS": str(RESYNC_SECONDS), "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kopf", "run", "-m", HANDLERS, "--standalone", *scope,
                 "--verbose"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True, preexec_fn=functools.partial(die_with, os.getpid()),
            )
        OperatorProcess.pids.add(self.process.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def reconciles(self, namespace: str, name: str, trigger: str = "timer") -> int:
        """How many reconciles of one object the operator has logged so far."""
        return sum(1 for line in self.log().splitlines()
                   if f"[{namespace}/{name}]" in line and f"reconciled ({trigger})" in line)

    def started(self) -> bool:
        """Watching (or already failed: then raise with its log)."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"operator exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return f"Starting the watch-stream for {PLURAL}." in self.log()  # needs --verbose

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session", autouse=True)
def no_operator_left_behind():
    """After the tier (every operator fixture torn down first): no `kopf run` of ours remains."""
    yield
    left = [pid for pid in processes_mentioning(HANDLERS) if pid in OperatorProcess.pids]
    assert not left, f"operator processes still running after the tier: {left}"


def start_operator_process(kubeconfig, log_path: Path, scope=("--all-namespaces",)):
    process = OperatorProcess(Path(kubeconfig), log_path, scope)
    try:
        wait_until(process.started, timeout=30, what="the operator watching")
    except BaseException:
        process.stop()
        raise
    return process


@pytest.fixture(scope="session")
def operator_process(control_plane, crd, deleted_namespaces, tmp_path_factory):
    """The operator, running for the whole session and watching every namespace."""
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    process = start_operator_process(control_plane.kubeconfig, log_path)
    yield process
    try:
        deleted_namespaces.wait_gone()  # the finalizers on ScaleStages go with this operator
    finally:
        process.stop()
    if os.environ.get("SCALESTAGE_KEEP_OPERATOR_LOG"):
        print(process.log())


@pytest.fixture(name="start_operator")
def start_operator_fixture(tmp_path):
    """start_operator(kubeconfig, *scope): another operator process, stopped after the test.
    Request it before `namespace`, so the namespace goes while the operator still runs (kopf's
    finalizer on a ScaleStage needs a running operator to go)."""
    started = []

    def start(kubeconfig, *scope):
        process = start_operator_process(kubeconfig, tmp_path / f"operator-{len(started)}.log",
                                         scope or ("--all-namespaces",))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class DeletedNamespaces:
    """The namespaces tests have deleted, waited for together until they are gone. A namespace
    goes seconds after its test (the namespace controller waits 5 s before it starts, and about
    as long again when something in it had a finalizer): waiting after each test would double
    the tier's time, so they go in the background and are waited for before the session's
    operator stops (kopf's finalizer on a ScaleStage needs a running operator) and again at the
    end. One that does not go fails the session, with its test's name and what holds it."""

    def __init__(self, core):
        self.core = core
        self.names: list[str] = []

    def delete(self, name: str) -> None:
        self.core.delete_namespace(name)
        self.names.append(name)

    def wait_gone(self) -> None:
        if self.names:
            delete_namespaces(self.core, *self.names)


@pytest.fixture(scope="session")
def deleted_namespaces(api):
    namespaces = DeletedNamespaces(client.CoreV1Api(api))
    yield namespaces
    namespaces.wait_gone()


@pytest.fixture
def namespace(api, deleted_namespaces, request):
    """A fresh namespace for one test, named after it; deleted afterwards (see
    DeletedNamespaces for the wait until it is gone)."""
    name = f"t-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    deleted_namespaces.delete(name)


class Kube:
    """The few calls the operator tests make, through the kubernetes DynamicClient, as dicts."""

    KINDS = {**apply.KINDS, "PersistentVolumeClaim": "v1", "Pod": "v1", "Event": "v1",
             apply.SCALESTAGE: API_VERSION}

    def __init__(self, api):
        self.dynamic = DynamicClient(api)

    def resource(self, kind):
        return self.dynamic.resources.get(api_version=self.KINDS[kind], kind=kind)

    # the ScaleStage

    def create(self, namespace, name, spec, field_validation=None):
        body = {"apiVersion": API_VERSION, "kind": apply.SCALESTAGE,
                "metadata": {"name": name}, "spec": spec}
        query = [("fieldValidation", field_validation)] if field_validation else []
        return self.resource(apply.SCALESTAGE).create(
            body=body, namespace=namespace, query_params=query).to_dict()

    def get(self, namespace, name):
        return self.read(apply.SCALESTAGE, namespace, name)

    def patch_spec(self, namespace, name, spec):
        return self.merge_patch(apply.SCALESTAGE, namespace, name, {"spec": spec})

    def delete(self, namespace, name):
        self.resource(apply.SCALESTAGE).delete(name=name, namespace=namespace)

    # any kind

    def read(self, kind, namespace, name):
        """The object, or None when there is none."""
        try:
            return self.resource(kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, kind, namespace, selector=None):
        return self.resource(kind).get(namespace=namespace, label_selector=selector).to_dict()[
            "items"]

    def merge_patch(self, kind, namespace, name, body):
        return self.resource(kind).patch(
            body=body, name=name, namespace=namespace,
            content_type="application/merge-patch+json").to_dict()

    def delete_child(self, kind, namespace, name):
        self.resource(kind).delete(name=name, namespace=namespace)

    def server_side_apply(self, manifest, field_manager):
        return self.resource(manifest["kind"]).server_side_apply(
            body=manifest, field_manager=field_manager, force_conflicts=True).to_dict()

    def children(self, namespace, instance=INSTANCE):
        """{"Kind/name"} of every object the operator manages for one instance."""
        selector = Names(instance).children_selector
        return {f"{kind}/{obj['metadata']['name']}"
                for kind in apply.KINDS for obj in self.list(kind, namespace, selector)}


@pytest.fixture(scope="session")
def kube(api):
    return Kube(api)
