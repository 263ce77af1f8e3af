"""What a person checks once a stage is reached (tests/e2e/test_journey.py): its real pods Ready
under the restricted Pod Security Standard, one user's visit through the Service `chirp`, the
`kubectl get scalestages` columns, Chirp on http://localhost:8080, and at stage 5 the edge's
cache and the workers' fan-out.

Requests come from a client pod inside the cluster (or the load Job's pod), so they take the path
any in-cluster client takes (Service → kube-proxy → pod); the X-Chirp-* headers tell which stage,
pod and database answered.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from scalestage.names import CLUSTER, COMPONENT, ROLE
from scalestage.names import INSTANCE as INSTANCE_LABEL
from scalestage.specs import app
from tests.e2e.kindcluster import TRANSIENT, Cluster
from tests.e2e.walking import INSTANCE, RESTRICTED, load_pod_name, pods
from tests.operator.expected_children import SPOFS, WORKLOADS, replicas
from tests.polling import wait_until

# Run in the client pod: one anonymous GET, printed as JSON (status 0: nothing answered).
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

# Run in the load pod: the response headers of each URL, sent back to back from one process
# (each edge pod caches a page for 5 s, and a kubectl exec per request could outlast that).
PUBLIC_GETS = r"""
import json, sys, urllib.request
headers = []
for url in sys.argv[1:]:
    with urllib.request.urlopen(url, timeout=10) as response:
        headers.append({k.lower(): v for k, v in response.headers.items()})
print(json.dumps(headers))
"""

# Run in the load pod: two users on different shards, one follows the other, the other posts; the
# follower's timeline is read until the post is there (built by the workers: X-Chirp-Timeline).
FANOUT = r"""
import http.cookiejar, json, sys, time, urllib.error, urllib.request
base, stamp = sys.argv[1], str(int(time.time() * 1000))[-7:]

def client():
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

def call(who, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        response = who.open(request, timeout=10)
    except urllib.error.HTTPError as error:
        response = error
    return response.status, dict(response.headers), json.loads(response.read() or b"null")

users = {}
for n in range(40):  # until two users live on different shards
    who, name = client(), f"fan{stamp}x{n}"
    status, headers, _ = call(who, "POST", "/api/signup",
                              {"username": name, "password": "correct-horse-42"})
    assert status == 201, (status, name)
    users.setdefault(headers.get("X-Chirp-DB"), (who, name))
    if len(users) == 2:
        break
(follower_shard, (follower, _)), (author_shard, (author, author_name)) = list(users.items())
assert call(follower, "POST", f"/api/users/{author_name}/follow")[0] in (200, 201)
status, _, body = call(author, "POST", "/api/posts", {"body": f"fanned out {stamp}"})
post_id = body["post"]["id"]
deadline, found, source = time.time() + 60, False, None
while time.time() < deadline and not (found and source == "fanout"):
    status, headers, body = call(follower, "GET", "/api/timeline")
    source = headers.get("X-Chirp-Timeline")
    found = status == 200 and any(p["id"] == post_id for p in body["posts"])
    time.sleep(0.5)
print(json.dumps({"follower_shard": follower_shard, "author_shard": author_shard,
                  "delivered": found, "timeline": source}))
"""


# --- pure: what a stage should look like --------------------------------------------------------

def front_door_component(stage: int) -> str:
    """Whose pods answer a request (and say so in X-Chirp-Pod): at stage 5 the edge passes it
    on to a web pod."""
    return "monolith" if stage == 1 else "web"


def public_read_source(stage: int) -> str:
    """Where an anonymous read is served from once the stage has settled (stages 1–4; stage 5's
    public pages are the edge's: `check_stage_5`)."""
    return {3: "a replica", 4: "the cache"}.get(stage, "the primary")


def served_from(row: dict) -> str:
    headers = row["headers"]
    if (headers.get("x-chirp-db"), headers.get("x-chirp-cache")) == ("none", "hit"):
        return "the cache"  # no database touched
    if headers.get("x-chirp-db", "").startswith("replica"):
        return "a replica"
    return "the primary" if headers.get("x-chirp-db") == "primary" else repr(headers)


def writes_went_to_a_primary(stage: int, db: str) -> bool:
    """X-Chirp-DB of a write: `primary`, or at stage 5 the user's shard (`shard-N`)."""
    if stage == 5:
        return db.startswith("shard-") and "replica" not in db
    return db == "primary"


def printer_row(table: str) -> dict[str, str]:
    """`kubectl get scalestages` output (header + one row) as {column: value}. SPOFs may hold
    ", "-separated words, so the row is split on the header's column starts, not on spaces."""
    header, row = [line for line in table.splitlines() if line.strip()][:2]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, starts[1:] + [None], strict=False))
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


def component_of(pod) -> str:
    """A pod's component as the status names it (db pods by role: db-primary, db-replica,
    db-shard-N-primary ...)."""
    labels = pod.metadata.labels
    if labels[COMPONENT] == "db":
        return f"{labels[CLUSTER]}-{labels[ROLE]}"  # the cluster: db, db-shard-0, ...
    return labels[COMPONENT]


# --- the checks ---------------------------------------------------------------------------------

def is_ready(pod) -> bool:
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def stage_pods(cluster: Cluster, namespace: str, stage: int,
               terminating: bool = False) -> dict[str, list]:
    """Component -> its pods (the stage's workloads; not the load's or a move's Job); those
    being deleted only with `terminating` (a web pod drains for a while: it still answers)."""
    out: dict[str, list] = {}
    for pod in pods(cluster, namespace, f"{INSTANCE_LABEL}={INSTANCE}"):
        if (terminating or pod.metadata.deletion_timestamp is None) and pod.metadata.labels.get(
                COMPONENT) in {"monolith", "web", "db", "redis", "worker", "edge"}:
            out.setdefault(component_of(pod), []).append(pod)
    return out


def check_real_pods(cluster: Cluster, namespace: str, stage: int, status: dict) -> dict:
    """The status's components, all Ready, and the pods behind them: as many as desired, Ready,
    restricted, never pulling (every image is loaded into the nodes). Pods of the stage before
    may still be draining a moment after Ready (and answering, as that stage): waited for."""
    assert status["stage"] == stage
    assert {c["name"]: c["desired"] for c in status["components"]} == replicas(stage)
    assert all(c["ready"] == c["desired"] for c in status["components"]), status["components"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "AllComponentsReady")
    labels = cluster.core.read_namespace(namespace).metadata.labels
    assert RESTRICTED.items() <= labels.items(), labels

    def as_desired():
        found = stage_pods(cluster, namespace, stage, terminating=True)
        counts = {name: len(group) for name, group in found.items()}
        return found if counts == replicas(stage) and all(
            is_ready(p) for group in found.values() for p in group) else None

    found = wait_until(as_desired, timeout=120, interval=1, tolerate=TRANSIENT,
                       what=f"stage {stage}'s pods: {replicas(stage)}, all Ready, none draining")
    for pod in (p for group in found.values() for p in group):
        for c in pod.spec.containers + (pod.spec.init_containers or []):
            assert c.image_pull_policy == "IfNotPresent", (pod.metadata.name, c.name)
        assert pod.spec.security_context.run_as_non_root, pod.metadata.name
    return found


def get(cluster: Cluster, client_pod: str, url: str) -> dict:
    """One anonymous GET from the client pod: {"status", "headers"} (status 0: no answer)."""
    return json.loads(cluster.exec(client_pod, "client", "python3", "-c", GET, url))


def visit(cluster: Cluster, client_pod: str, namespace: str, stage: int) -> dict:
    """One user's visit (sign up, post, read) through Service chirp from the client pod."""
    url = f"http://{INSTANCE}.{namespace}.svc.cluster.local"
    wait_until(lambda: get(cluster, client_pod, f"{url}/readyz")["status"] == 200,
               timeout=60, interval=0.5, what=f"{url}/readyz answering 200", tolerate=TRANSIENT)
    out = cluster.exec(client_pod, "client", "python3", "-c", VISIT, url, str(stage), timeout=120)
    return {**json.loads(out), "url": url}


def responses(seen: dict, step: str) -> list[dict]:
    return [r for r in seen["responses"] if r["step"] == step]


def reported_everywhere(cluster: Cluster, client_pod: str, namespace: str, stage: int) -> float:
    """Seconds until every front pod reports this stage (X-Chirp-Stage), each asked at its own
    address. A pod reports the stage of the architecture document it reads, a ConfigMap file:
    the web pods kept from stage 2 to 3 (same template) change in place, once the kubelet has
    rewritten the file (the operator makes it do so at once: apply.pods_to_refresh)."""
    front = stage_pods(cluster, namespace, stage).get(front_door_component(stage), [])
    urls = [f"http://{pod.status.pod_ip}:{app.PORT}/readyz" for pod in front]
    started = time.monotonic()
    wait_until(lambda: all(get(cluster, client_pod, url)["headers"].get("x-chirp-stage")
                           == str(stage) for url in urls),
               # the kubelet's own pass took 85 s on kind; told by the operator, 2-3 s
               timeout=60, interval=2, tolerate=TRANSIENT,
               what=f"every {front_door_component(stage)} pod reporting stage {stage}")
    return time.monotonic() - started


def check_visit(cluster: Cluster, client_pod: str, namespace: str, stage: int) -> str:
    """A visit answered by this stage's front pods, writes on a primary, the session honoured on
    every pod it reached (sticky at 3, spread from 4), cache hits from 4; anonymous reads from
    where the stage serves them. Returns what was seen, for the log."""
    caught_up = reported_everywhere(cluster, client_pod, namespace, stage)
    seen = visit(cluster, client_pod, namespace, stage)
    rows = seen["responses"]
    bad = [(r["step"], r["status"], r.get("json") or r.get("text")) for r in rows
           if r["status"] >= 400]
    assert not bad, bad
    stages = [(r["step"], r["headers"].get("x-chirp-stage"), r["headers"].get("x-chirp-pod"))
              for r in rows]
    assert {s for _, s, _ in stages} == {str(stage)}, stages
    front = {p.metadata.name for p in stage_pods(cluster, namespace, stage).get(
        front_door_component(stage), [])}
    served_by = {r["headers"]["x-chirp-pod"] for r in rows}
    assert served_by <= front, (served_by, front)

    signup, post = responses(seen, "POST /api/signup")[0], responses(seen, "POST /api/posts")[0]
    assert signup["status"] == 201 and post["status"] == 201
    assert signup["headers"]["x-chirp-db"] == post["headers"]["x-chirp-db"]
    assert writes_went_to_a_primary(stage, post["headers"]["x-chirp-db"]), post["headers"]
    timeline = responses(seen, "GET /api/timeline")[0]
    assert [p["body"] for p in timeline["json"]["posts"]] == [f"hello from stage {stage}"]

    me = responses(seen, "GET /api/me")
    assert {r["json"]["user"]["username"] for r in me} == {seen["user"]}
    me_pods = {r["headers"]["x-chirp-pod"] for r in me}
    if stage == 3:
        assert len(me_pods) == 1, f"sticky sessions: one pod expected, got {me_pods}"
    if stage == 4:
        assert len(me_pods) >= 2, f"sessions in Redis, no affinity: several pods, got {me_pods}"
    caches = [r["headers"].get("x-chirp-cache") for r in responses(seen, "GET /api/timeline")]
    if stage < 4:
        assert set(caches) == {"off"}, caches
    if stage == 4:
        assert "hit" in caches[1:], caches
    text = (f"every front pod reported stage {stage} after {caught_up:.0f} s; "
            f"pods {sorted(served_by)}; writes on {post['headers']['x-chirp-db']}; /api/me on "
            f"{len(me_pods)} pod(s); timeline cache {caches}")
    if stage < 5:
        # from a replica at 3 once one has proved healthy, from Redis at 4 once filled
        source = public_read_source(stage)
        public = wait_until(
            lambda: (row := get(cluster, client_pod, f"{seen['url']}/api/public"))
            and row["status"] == 200 and served_from(row) == source and row,
            timeout=60, interval=0.5, what=f"an anonymous read served by {source}",
            tolerate=TRANSIENT)
        text += f"; public read from {served_from(public)}"
    return text


def check_printer_columns(cluster: Cluster, namespace: str, stage: int) -> None:
    row = printer_row(cluster.kubectl("get", "-n", namespace, "scalestages"))
    workloads = len(WORKLOADS[stage])
    assert list(row) == ["NAME", "STAGE", "TARGET", "PHASE", "PROGRESS", "SPOFS", "AGE"]
    assert row["NAME"] == INSTANCE
    assert row["STAGE"] == row["TARGET"] == str(stage)
    assert row["PHASE"] == "Ready"
    assert row["PROGRESS"] == f"{workloads}/{workloads}"
    assert row["SPOFS"] == ", ".join(SPOFS[stage])
    assert row["AGE"]


def get_from_host(url: str) -> dict:
    """One GET from this machine (outside the cluster): {"status", "headers"}."""
    try:
        response = urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError as error:
        response = error
    return {"status": response.status,
            "headers": {k.lower(): v for k, v in response.headers.items()}}


def check_localhost_8080(cluster: Cluster, namespace: str, stage: int, owns_port: bool) -> str:
    """What a person opens after `make up`: http://localhost:8080 reaches Chirp with no
    port-forward (kind maps node port 30080 there; the example's frontDoor.nodePort opens it)."""
    row = wait_until(lambda: (r := get_from_host("http://127.0.0.1:8080/api/public"))
                     and r["status"] == 200 and r, timeout=60, interval=0.5,
                     what="Chirp on http://127.0.0.1:8080", tolerate=TRANSIENT)
    if owns_port:
        assert row["headers"]["x-chirp-stage"] == str(stage)
        front = {p.metadata.name for p in stage_pods(cluster, namespace, stage).get(
            front_door_component(stage), [])}
        assert row["headers"]["x-chirp-pod"] in front, (row["headers"], front)
    else:  # another instance (make up's) holds the port: it must be Chirp answering there
        assert row["headers"]["x-chirp-stage"] in {"1", "2", "3", "4", "5"}
    return row["headers"]["x-chirp-pod"]


def check_stage_5(cluster: Cluster, namespace: str) -> str:
    """Stage 5 as users expect it: the edge answers a repeated public page from its cache and
    spreads the pages it cannot cache over the web pods; a post reaches a follower on another
    shard through the workers' fan-out."""
    web = {p.metadata.name for p in stage_pods(cluster, namespace, 5).get("web", [])}
    load_pod = load_pod_name(cluster, namespace)

    def public(*queries: str) -> list[dict]:
        return json.loads(cluster.exec(namespace, load_pod, "python3", "-c", PUBLIC_GETS,
                                       *(f"http://{INSTANCE}/api/public?{q}" for q in queries)))

    # Three requests for one page over the two edge pods: two reach the same one, a HIT.
    caches = [headers.get("x-cache") for headers in public(*["probe=same"] * 3)]
    spread = {headers.get("x-chirp-pod") for headers in public(*(f"probe={n}" for n in range(20)))}
    assert "HIT" in caches, caches
    assert len(spread & web) >= 2, (spread, web)
    fanout = json.loads(cluster.exec(namespace, load_pod, "python3", "-c", FANOUT,
                                     f"http://{INSTANCE}", timeout=120))
    assert fanout["follower_shard"] != fanout["author_shard"], fanout
    assert fanout["delivered"] and fanout["timeline"] == "fanout", fanout
    return (f"edge cache on a repeated page {caches}; 20 distinct pages served by "
            f"{sorted(p for p in spread if p)}; fan-out {fanout}")
