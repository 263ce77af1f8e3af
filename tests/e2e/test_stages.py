"""Stages 1–4 on real pods: the operator installed by helm turns each example ScaleStage into a
running Chirp that answers through its Service `chirp`.

One stage at a time (2 cores): each gets a fresh namespace, is checked, and is deleted before the
next one starts. Requests come from a client pod inside the cluster, so they take the same path
as any other in-cluster client (Service → kube-proxy → pod); the X-Chirp-* headers tell which
stage, pod and database answered.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from kubernetes import client

from scalestage.names import COMPONENT, GROUP, PLURAL, ROLE, VERSION
from scalestage.names import INSTANCE as INSTANCE_LABEL
from tests.e2e.kindcluster import REPO_ROOT, TRANSIENT, Cluster
from tests.operator.expected_children import INSTANCE, SPOFS, replicas
from tests.polling import wait_until

pytestmark = pytest.mark.slow

EXAMPLES = REPO_ROOT / "examples"
# Every stage runs under the restricted Pod Security Standard: its pods are refused otherwise.
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted"
              for mode in ("enforce", "warn", "audit")}
READY_TIMEOUT = 420  # a cold stage 3 on 2 cores: 3 Postgres initdb/basebackups + 3 web pods

# Run in the client pod: one anonymous GET, printed as JSON (status 0: nothing answered). The
# tests poll with it (tests/polling.py) where something has to settle first.
GET = r"""
import json, sys, urllib.error, urllib.request
try:
    response = urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError as error:
    response = error
except OSError as error:
    print(json.dumps({"status": 0, "error": str(error), "headers": {}}))
    raise SystemExit
print(json.dumps({"status": response.status, "headers": {
    k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-chirp")}}))
"""

# Run in the client pod: one user's visit through the front door, every response as JSON.
VISIT = r"""
import http.cookiejar, json, sys, time, urllib.error, urllib.request
base, stage = sys.argv[1], int(sys.argv[2])
user = "e2e" + str(int(time.time() * 1000))[-8:]
as_user = urllib.request.build_opener(
    urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
out = []

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        response = as_user.open(request, timeout=10)
    except urllib.error.HTTPError as error:
        response = error
    text = response.read().decode(errors="replace")
    row = {"step": f"{method} {path}", "status": response.status,
           "headers": {k.lower(): v for k, v in response.headers.items()
                       if k.lower().startswith("x-chirp")}}
    try:
        row["json"] = json.loads(text)
    except ValueError:
        row["text"] = text[:300]
    out.append(row)

call("POST", "/api/signup", {"username": user, "password": "correct-horse-42"})
call("POST", "/api/posts", {"body": f"hello from stage {stage}"})
call("GET", "/api/timeline")
for _ in range(8):  # a new connection each: which pods keep this session?
    call("GET", "/api/me")
for _ in range(3):  # cache-aside at stage 4: the first read fills, the next ones hit
    call("GET", "/api/timeline")
print(json.dumps({"user": user, "responses": out}))
"""


def report(capsys, message: str) -> None:
    """Show a measurement even when pytest captures output."""
    with capsys.disabled():
        print(f"\n    [e2e] {message}")


# --- pure helpers: what a stage should look like -----------------------------------------------

def front_door_component(stage: int) -> str:
    """Which component's pods answer through Service `chirp` at stages 1–4."""
    return "monolith" if stage == 1 else "web"


def public_read_source(stage: int) -> str:
    """Where an anonymous read is served from once the stage has settled."""
    return {3: "a replica", 4: "the cache"}.get(stage, "the primary")


def served_from(row: dict) -> str:
    headers = row["headers"]
    if (headers.get("x-chirp-db"), headers.get("x-chirp-cache")) == ("none", "hit"):
        return "the cache"  # no database touched
    if headers.get("x-chirp-db", "").startswith("replica"):
        return "a replica"
    return "the primary" if headers.get("x-chirp-db") == "primary" else repr(headers)


def printer_row(table: str) -> dict[str, str]:
    """`kubectl get scalestages` output (header + one row) as {column: value}. SPOFs may hold
    ", "-separated words, so the row is split on the header's column starts, not on spaces."""
    header, row = [line for line in table.splitlines() if line.strip()][:2]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, starts[1:] + [None], strict=False))
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


def test_printer_row_splits_on_columns():
    table = ("NAME    STAGE   TARGET   PHASE   PROGRESS   SPOFS                AGE\n"
             "chirp   4       4        Ready   4/4        db-primary, redis    2m\n")
    assert printer_row(table) == {"NAME": "chirp", "STAGE": "4", "TARGET": "4", "PHASE": "Ready",
                                  "PROGRESS": "4/4", "SPOFS": "db-primary, redis", "AGE": "2m"}


# --- fixtures ----------------------------------------------------------------------------------

def node_port_holder(cluster: Cluster, node_port: int) -> str | None:
    """`namespace/name` of the Service holding this node port, if any."""
    for svc in cluster.core.list_service_for_all_namespaces().items:
        if any(p.node_port == node_port for p in (svc.spec.ports or [])):
            return f"{svc.metadata.namespace}/{svc.metadata.name}"
    return None


def get_from_host(url: str) -> dict:
    """One GET from this machine (outside the cluster): {"status", "headers"}."""
    try:
        response = urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError as error:
        response = error
    return {"status": response.status,
            "headers": {k.lower(): v for k, v in response.headers.items()}}


def get(cluster: Cluster, client_pod: str, url: str) -> dict:
    """One anonymous GET from the client pod: {"status", "headers"} (status 0: no answer)."""
    return json.loads(cluster.exec(client_pod, "client", "python3", "-c", GET, url))


def scalestage(cluster: Cluster, namespace: str) -> dict:
    return client.CustomObjectsApi(cluster.core.api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, INSTANCE)


def pods_of(cluster: Cluster, namespace: str) -> list:
    return cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{INSTANCE_LABEL}={INSTANCE}").items


def is_ready(pod) -> bool:
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


@pytest.fixture(scope="module", params=[1, 2, 3, 4], ids=lambda n: f"stage{n}")
def stage(request, kind_cluster: Cluster, operator: str, say):
    """examples/stage-N.yaml applied in a fresh namespace and Ready; deleted afterwards and
    waited for until the namespace is gone (pods, volumes, the ScaleStage and its finalizer), so
    the next stage has the cores to itself."""
    number = request.param
    namespace = kind_cluster.create_namespace(f"e2e-stage{number}-{uuid.uuid4().hex[:6]}",
                                              labels=RESTRICTED)
    manifest = yaml.safe_load((EXAMPLES / f"stage-{number}.yaml").read_text())
    # The examples open the front door on node port 30080 (http://localhost:8080 on the host).
    # One Service can hold it at a time: on a machine where `make up`'s instance holds it, this
    # instance stays on its ClusterIP and the host port keeps answering for the other one.
    holder = node_port_holder(kind_cluster, manifest["spec"]["frontDoor"]["nodePort"])
    if holder:
        say(f"stage {number}: node port held by {holder}; this instance stays ClusterIP-only")
        del manifest["spec"]["frontDoor"]
    started = time.monotonic()
    kind_cluster.apply(manifest, namespace=namespace)
    try:
        def ready():
            found = scalestage(kind_cluster, namespace)
            status = found.get("status") or {}
            current = status.get("observedGeneration") == found["metadata"]["generation"]
            return status if current and status.get("phase") == "Ready" else None
        try:
            status = wait_until(ready, timeout=READY_TIMEOUT, interval=1,
                                what=f"stage {number} Ready", tolerate=TRANSIENT)
        except BaseException:
            kind_cluster.show(namespace, "scalestages,pods,pvc")
            raise
        elapsed = time.monotonic() - started
        counts = ", ".join(f"{c['name']} {c['ready']}/{c['desired']}" for c in status["components"])
        say(f"stage {number} Ready in {elapsed:.0f} s ({counts})")
        yield {"number": number, "namespace": namespace, "status": status, "seconds": elapsed,
               "owns_host_port": not holder}
    finally:
        started = time.monotonic()
        kind_cluster.delete_namespace(namespace)
        say(f"stage {number}: namespace deleted in {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="module")
def visit(stage, kind_cluster: Cluster, client_pod: str) -> dict:
    """One user's visit (sign up, post, read) through Service chirp, from the client pod, once
    the Service answers: ready pods reach it a moment later (EndpointSlice, then kube-proxy rules
    on each node)."""
    url = f"http://{INSTANCE}.{stage['namespace']}.svc.cluster.local"
    started = time.monotonic()
    wait_until(lambda: get(kind_cluster, client_pod, f"{url}/readyz")["status"] == 200,
               timeout=60, interval=0.5, what=f"{url}/readyz answering 200", tolerate=TRANSIENT)
    waited = time.monotonic() - started
    out = kind_cluster.exec(client_pod, "client", "python3", "-c", VISIT, url, str(stage["number"]),
                            timeout=120)
    return {**json.loads(out), "url": url, "service_wait": waited}


def responses(visit: dict, step: str) -> list[dict]:
    return [r for r in visit["responses"] if r["step"] == step]


# --- the tests ---------------------------------------------------------------------------------

def test_stage_reaches_ready_with_real_pods(stage, kind_cluster: Cluster):
    number, namespace, status = stage["number"], stage["namespace"], stage["status"]
    assert status["stage"] == number
    assert status["observedGeneration"] >= 1
    assert {c["name"]: c["desired"] for c in status["components"]} == replicas(number)
    assert all(c["ready"] == c["desired"] for c in status["components"]), status["components"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "AllComponentsReady")
    labels = kind_cluster.core.read_namespace(namespace).metadata.labels
    assert RESTRICTED.items() <= labels.items(), labels

    pods = pods_of(kind_cluster, namespace)
    by_component: dict[str, int] = {}
    for pod in pods:
        assert is_ready(pod), f"{pod.metadata.name} not ready"
        for c in pod.spec.containers + (pod.spec.init_containers or []):
            assert c.image_pull_policy == "IfNotPresent", (pod.metadata.name, c.name)
        sec = pod.spec.security_context
        assert sec.run_as_non_root, pod.metadata.name
        labels = pod.metadata.labels
        component = labels[COMPONENT]
        if component == "db":
            component = f"db-{labels[ROLE]}"
        by_component[component] = by_component.get(component, 0) + 1
    assert by_component == replicas(number)


def test_app_answers_through_its_service(stage, visit, kind_cluster: Cluster, client_pod: str,
                                        capsys):
    number, namespace = stage["number"], stage["namespace"]
    rows = visit["responses"]
    bad = [(r["step"], r["status"], r.get("json") or r.get("text")) for r in rows
           if r["status"] >= 400]
    assert not bad, bad
    assert {r["headers"].get("x-chirp-stage") for r in rows} == {str(number)}

    front = {p.metadata.name for p in pods_of(kind_cluster, namespace)
             if p.metadata.labels[COMPONENT] == front_door_component(number)}
    served_by = {r["headers"]["x-chirp-pod"] for r in rows}
    assert served_by <= front, (served_by, front)

    signup, post = responses(visit, "POST /api/signup")[0], responses(visit, "POST /api/posts")[0]
    assert signup["status"] == 201 and post["status"] == 201
    assert signup["headers"]["x-chirp-db"] == post["headers"]["x-chirp-db"] == "primary"
    timeline = responses(visit, "GET /api/timeline")[0]
    assert [p["body"] for p in timeline["json"]["posts"]] == [f"hello from stage {number}"]

    me = responses(visit, "GET /api/me")
    assert {r["json"]["user"]["username"] for r in me} == {visit["user"]}
    me_pods = {r["headers"]["x-chirp-pod"] for r in me}
    if number == 3:
        assert len(me_pods) == 1, f"sticky sessions: one pod expected, got {me_pods}"
    if number == 4:
        assert len(me_pods) >= 2, f"sessions in Redis, no affinity: several pods, got {me_pods}"

    caches = [r["headers"]["x-chirp-cache"] for r in responses(visit, "GET /api/timeline")]
    if number < 4:
        assert set(caches) == {"off"}
    else:
        assert "hit" in caches[1:], caches

    # Anonymous reads: from a replica at stage 3 once one has proved healthy, from Redis at
    # stage 4 once the first read has filled it, from the primary below.
    source = public_read_source(number)
    public = wait_until(
        lambda: (row := get(kind_cluster, client_pod, f"{visit['url']}/api/public"))
        and row["status"] == 200 and served_from(row) == source and row,
        timeout=60, interval=0.5, what=f"an anonymous read served by {source}", tolerate=TRANSIENT)
    report(capsys, f"stage {number}: Service answered after {visit['service_wait']:.1f} s; "
                   f"pods {sorted(served_by)}; /api/me on {len(me_pods)} pod(s); "
                   f"timeline cache {caches}; public read from {served_from(public)}")


def test_kubectl_get_scalestages_shows_the_columns(stage, kind_cluster: Cluster):
    row = printer_row(kind_cluster.kubectl("get", "-n", stage["namespace"], "scalestages"))
    workloads = len(replicas(stage["number"]))
    assert list(row) == ["NAME", "STAGE", "TARGET", "PHASE", "PROGRESS", "SPOFS", "AGE"]
    assert row["NAME"] == INSTANCE
    assert row["STAGE"] == row["TARGET"] == str(stage["number"])
    assert row["PHASE"] == "Ready"
    assert row["PROGRESS"] == f"{workloads}/{workloads}"
    assert row["SPOFS"] == ", ".join(SPOFS[stage["number"]])
    assert row["AGE"]


def test_front_door_answers_on_localhost_8080(stage, visit, kind_cluster: Cluster, capsys):
    """What a person opens after `make up`: http://localhost:8080 reaches Chirp with no
    port-forward (kind maps node port 30080 there; the example's frontDoor.nodePort opens it)."""
    row = wait_until(lambda: (r := get_from_host("http://127.0.0.1:8080/api/public"))
                     and r["status"] == 200 and r, timeout=60, interval=0.5,
                     what="Chirp on http://127.0.0.1:8080", tolerate=TRANSIENT)
    if stage["owns_host_port"]:
        assert row["headers"]["x-chirp-stage"] == str(stage["number"])
        front = {p.metadata.name for p in pods_of(kind_cluster, stage["namespace"])
                 if p.metadata.labels[COMPONENT] == front_door_component(stage["number"])}
        assert row["headers"]["x-chirp-pod"] in front, (row["headers"], front)
    else:  # another instance (make up's) holds the port: it must be Chirp answering there
        assert row["headers"]["x-chirp-stage"] in {"1", "2", "3", "4", "5"}
    report(capsys, f"stage {stage['number']}: http://localhost:8080 served by "
                   f"{row['headers']['x-chirp-pod']}")
