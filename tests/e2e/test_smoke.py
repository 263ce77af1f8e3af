"""Smoke tests of the kind cluster: nodes, scheduling, Services, DNS, storage, self-healing.

Every test runs real pods on the three-node cluster of kind-config.yaml. The workload is the
locally built python-base image (loaded with `kind load`, never pulled: imagePullPolicy Never)
running a tiny HTTP server that answers with its pod name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.e2e.kindcluster import TEST_IMAGE, TRANSIENT, Cluster
from tests.polling import WaitTimeout, wait_until

pytestmark = pytest.mark.slow

APP = "smoke-web"
NODE_PORT = 30080  # kind-config.yaml maps it to 127.0.0.1:8080 on the host
HOST_PORT = 8080

SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["POD_NAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""

# run in the client pod: N requests, each on a new connection, print the pod names that answered
FETCH = """
import json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
names = []
for _ in range(n):
    with urllib.request.urlopen(url, timeout=5) as r:
        names.append(r.read().decode())
print(json.dumps(names))
"""


def report(capsys, message: str) -> None:
    """Show a measurement even when pytest captures output."""
    with capsys.disabled():
        print(f"\n    [e2e] {message}")


def web_manifests() -> list[dict]:
    labels = {"app": APP}
    pod_spec = {
        "terminationGracePeriodSeconds": 1,
        # one pod per worker at least: spread by host, ignoring nodes whose taints we don't
        # tolerate (the control plane, a dead worker)
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "nodeTaintsPolicy": "Honor",
            "labelSelector": {"matchLabels": labels},
        }],
        # leave an unreachable node after 5 s instead of the default 300 s
        "tolerations": [
            {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 5}
            for t in ("unreachable", "not-ready")
        ],
        "containers": [{
            "name": "web",
            "image": TEST_IMAGE,
            "imagePullPolicy": "Never",
            "command": ["python3", "-c", SERVER],
            "env": [{"name": "POD_NAME",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        }],
    }
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP, "labels": labels},
         "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "smoke-client"},
         "spec": {"terminationGracePeriodSeconds": 0,
                  "containers": [{"name": "client", "image": TEST_IMAGE, "imagePullPolicy": "Never",
                                  "command": ["sleep", "infinity"]}]}},
    ]


def ready_pods(cluster: Cluster, namespace: str) -> list[client.V1Pod]:
    """The app's pods that are Ready and not being deleted."""
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"app={APP}").items
    return [
        p for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


def three_ready(cluster: Cluster, namespace: str, exclude=(), avoid_node: str | None = None):
    pods = [p for p in ready_pods(cluster, namespace)
            if p.metadata.name not in exclude and p.spec.node_name != avoid_node]
    return pods if len(pods) == 3 else None


@pytest.fixture(scope="module")
def web(kind_cluster: Cluster, namespace: str) -> str:
    kind_cluster.apply(*web_manifests(), namespace=namespace)
    wait_until(lambda: three_ready(kind_cluster, namespace), timeout=180, interval=1,
               what="3 ready smoke-web pods", tolerate=TRANSIENT)
    wait_until(lambda: kind_cluster.core.read_namespaced_pod(
        "smoke-client", namespace).status.phase == "Running", timeout=120, interval=1,
        what="the client pod", tolerate=TRANSIENT)
    return namespace


def fetch(cluster: Cluster, namespace: str, url: str, n: int) -> list[str]:
    return json.loads(cluster.exec(namespace, "smoke-client", "python3", "-c", FETCH, url, str(n)))


# --- the cluster itself ---------------------------------------------------------------------------

def test_three_nodes_ready_and_system_pods_running(kind_cluster: Cluster, capsys):
    nodes = kind_cluster.core.list_node().items
    assert len(nodes) == 3, [n.metadata.name for n in nodes]
    for n in nodes:
        ready = next(c for c in n.status.conditions if c.type == "Ready")
        assert ready.status == "True", f"{n.metadata.name}: {ready.reason} {ready.message}"
    roles = sorted("control-plane" if "node-role.kubernetes.io/control-plane" in n.metadata.labels
                   else "worker" for n in nodes)
    assert roles == ["control-plane", "worker", "worker"]

    def all_running():
        pods = kind_cluster.core.list_namespaced_pod("kube-system").items
        return pods if pods and all(p.status.phase == "Running" for p in pods) else None

    pods = wait_until(all_running, timeout=120, interval=1, what="every kube-system pod Running",
                      tolerate=TRANSIENT)
    names = {p.metadata.name.rsplit("-", 1)[0] for p in pods}
    for expected in ("etcd-scalestage-control", "kube-apiserver-scalestage-control", "coredns"):
        assert any(n.startswith(expected) for n in names), (expected, sorted(names))
    report(capsys, f"{len(nodes)} nodes Ready, {len(pods)} kube-system pods Running")


# --- workloads ------------------------------------------------------------------------------------

def test_local_image_deployment_spreads_over_both_workers(kind_cluster: Cluster, web: str):
    pods = ready_pods(kind_cluster, web)
    assert len(pods) == 3
    assert {p.spec.node_name for p in pods} == set(kind_cluster.worker_nodes())
    assert all(p.spec.containers[0].image == TEST_IMAGE for p in pods)


def test_service_load_balances_across_pods(kind_cluster: Cluster, web: str, capsys):
    service = kind_cluster.core.read_namespaced_service(APP, web)
    pod_names = {p.metadata.name for p in ready_pods(kind_cluster, web)}
    seen: list[str] = []

    def spread() -> bool:
        seen[:] = fetch(kind_cluster, web, f"http://{service.spec.cluster_ip}/", 40)
        assert set(seen) <= pod_names, seen
        return len(set(seen)) >= 2

    # Pods Ready in the API may not be in the client node's kube-proxy rules yet (a busy node
    # syncs them seconds later: once, all 40 answers came from one pod): ask again meanwhile.
    try:
        wait_until(spread, timeout=60, interval=2, what="answers from 2 or more pods",
                   tolerate=TRANSIENT)
    except WaitTimeout as error:
        raise AssertionError(f"{error}: {seen}") from None
    names = seen
    report(capsys, f"40 requests to {service.spec.cluster_ip} answered by {len(set(names))} pods")


def test_cluster_dns_resolves_the_service(kind_cluster: Cluster, web: str):
    service = kind_cluster.core.read_namespaced_service(APP, web)
    for name in (f"{APP}.{web}.svc.cluster.local", APP):
        resolved = kind_cluster.exec(
            web, "smoke-client", "python3", "-c",
            f"import socket; print(socket.gethostbyname({name!r}))").strip()
        assert resolved == service.spec.cluster_ip, name
    names = fetch(kind_cluster, web, f"http://{APP}/", 3)  # the short name, from the same namespace
    assert set(names) <= {p.metadata.name for p in ready_pods(kind_cluster, web)}, names


def test_host_port_mapping_reaches_a_node_port(kind_cluster: Cluster, web: str):
    import urllib.request

    def answer():
        with urllib.request.urlopen(f"http://127.0.0.1:{HOST_PORT}/", timeout=3) as r:
            return r.status, r.read().decode()

    in_use = [s for s in kind_cluster.core.list_service_for_all_namespaces().items
              if any(p.node_port == NODE_PORT for p in (s.spec.ports or []))]
    if in_use:  # e.g. `make up`'s Chirp: the mapping must then reach that Service
        status, _ = wait_until(answer, timeout=60, interval=1,
                               what=f"{in_use[0].metadata.namespace}/{in_use[0].metadata.name}"
                                    f" on 127.0.0.1:{HOST_PORT}", tolerate=TRANSIENT)
        assert status == 200
        return
    kind_cluster.apply({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{APP}-nodeport"},
        "spec": {"type": "NodePort", "selector": {"app": APP},
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": NODE_PORT}]},
    }, namespace=web)
    try:
        _, name = wait_until(answer, timeout=60, interval=1,
                             what=f"an answer on 127.0.0.1:{HOST_PORT}", tolerate=TRANSIENT)
        assert name.startswith(APP)
    finally:
        kind_cluster.core.delete_namespaced_service(f"{APP}-nodeport", web)


def test_pvc_binds_through_default_storage_class_and_data_survives_pod_deletion(
        kind_cluster: Cluster, namespace: str):
    token = uuid.uuid4().hex
    classes = client.StorageV1Api(kind_cluster.core.api_client).list_storage_class().items
    default = [c.metadata.name for c in classes
               if (c.metadata.annotations or {}).get(
                   "storageclass.kubernetes.io/is-default-class") == "true"]
    assert len(default) == 1, default

    def pod(name: str, command: str) -> dict:
        container = {"name": "c", "image": TEST_IMAGE, "imagePullPolicy": "Never",
                     "command": ["sh", "-c", command],
                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
        volume = {"name": "data", "persistentVolumeClaim": {"claimName": "smoke-data"}}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [container],
                         "volumes": [volume]}}

    kind_cluster.apply(
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "smoke-data"},
         "spec": {"accessModes": ["ReadWriteOnce"],
                  "resources": {"requests": {"storage": "64Mi"}}}},
        pod("writer", f"echo {token} > /data/token && sleep infinity"),
        namespace=namespace)

    def running(name):
        return kind_cluster.core.read_namespaced_pod(name, namespace).status.phase == "Running"

    wait_until(lambda: running("writer"), timeout=180, interval=1, what="the writer pod",
               tolerate=TRANSIENT)
    pvc = kind_cluster.core.read_namespaced_persistent_volume_claim("smoke-data", namespace)
    assert pvc.status.phase == "Bound"
    assert pvc.spec.storage_class_name == default[0]
    wait_until(lambda: kind_cluster.exec(namespace, "writer", "cat", "/data/token").strip()
               == token, timeout=120, interval=1, what="the token written", tolerate=TRANSIENT)

    kind_cluster.core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)

    def gone():
        try:
            kind_cluster.core.read_namespaced_pod("writer", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False
    wait_until(gone, timeout=120, interval=1, what="the writer pod gone", tolerate=TRANSIENT)

    kind_cluster.apply(pod("reader", "sleep infinity"), namespace=namespace)
    wait_until(lambda: running("reader"), timeout=180, interval=1, what="the reader pod",
               tolerate=TRANSIENT)
    assert kind_cluster.exec(namespace, "reader", "cat", "/data/token").strip() == token


def test_deleted_pod_is_replaced_and_ready(kind_cluster: Cluster, web: str, capsys):
    victim = ready_pods(kind_cluster, web)[0].metadata.name
    started = time.monotonic()
    kind_cluster.core.delete_namespaced_pod(victim, web)
    pods = wait_until(lambda: three_ready(kind_cluster, web, exclude={victim}), timeout=120,
                      interval=0.2, what="a replacement pod Ready", tolerate=TRANSIENT)
    elapsed = time.monotonic() - started
    assert victim not in {p.metadata.name for p in pods}
    report(capsys, f"deleted pod {victim} replaced and Ready in {elapsed:.1f} s")


# --- node failure (last: it restarts a worker) ---------------------------------------------------

def test_stopped_worker_pods_come_back_on_the_other_worker(kind_cluster: Cluster, web: str, capsys):
    docker = shutil.which("docker")
    assert docker, "docker CLI not found"
    workers = kind_cluster.worker_nodes()
    pods = ready_pods(kind_cluster, web)
    victim = next(w for w in workers if any(p.spec.node_name == w for p in pods))
    survivor = next(w for w in workers if w != victim)
    started = time.monotonic()
    subprocess.run([docker, "stop", victim], check=True, capture_output=True, timeout=120)
    try:
        moved = wait_until(lambda: three_ready(kind_cluster, web, avoid_node=victim), timeout=300,
                           interval=2, what=f"3 ready pods on {survivor} after stopping {victim}",
                           tolerate=TRANSIENT)
        assert {p.spec.node_name for p in moved} == {survivor}
        report(capsys, f"{victim} stopped: its pods Ready again on {survivor} in "
                       f"{time.monotonic() - started:.0f} s")
    finally:
        restarted = time.monotonic()
        subprocess.run([docker, "start", victim], check=True, capture_output=True, timeout=120)

        def node_back():
            node = kind_cluster.core.read_node(victim)
            ready = next(c for c in node.status.conditions if c.type == "Ready")
            if ready.status != "True":
                return False
            system = kind_cluster.core.list_namespaced_pod(
                "kube-system", field_selector=f"spec.nodeName={victim}").items
            # the Ready condition, not containerStatuses: while the node was away the node
            # controller marked its pods unready, and only the returning kubelet resets that
            return system and all(p.status.phase == "Running" and any(
                c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
                for p in system)
        wait_until(node_back, timeout=240, interval=2, what=f"{victim} Ready again",
                   tolerate=TRANSIENT)
        report(capsys, f"{victim} restarted and Ready in {time.monotonic() - restarted:.0f} s")
