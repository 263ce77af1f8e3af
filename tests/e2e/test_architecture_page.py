"""The architecture page in a real browser (Debian's headless chromium) at stages 1, 3 and 5 on
the kind cluster: what a person looks at, and whether it keeps up with the cluster.

Each stage gets a fresh namespace (examples/stage-N.yaml, restricted Pod Security), reached with
`kubectl port-forward svc/chirp`, the front door, so the page's own polls go through it like any
request. Checked: every component of the stage drawn with its pods Ready, the SPOFs in red, the
request path's arrows, the pod that answered highlighted, the stage's lesson; at stage 3 a
scale-out and a deleted web pod, at stage 5 a deleted database replica, each shown within a few
seconds and back to Ready. Screenshots go to a temp folder (paths printed).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest
import yaml
from kubernetes import client

from scalestage.names import GROUP, PLURAL, VERSION
from tests.e2e.kindcluster import REPO_ROOT, TRANSIENT, Cluster, tool
from tests.fixtures import browser
from tests.operator.expected_children import INSTANCE, SPOFS, WORKLOADS, replicas
from tests.polling import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(browser.available() is not None,
                                 reason=str(browser.available()))]

EXAMPLES = REPO_ROOT / "examples"
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted"
              for mode in ("enforce", "warn", "audit")}
READY_TIMEOUT = 480  # a cold stage 5 on 2 cores: 4 Postgres, Redis, 3 web, 2 workers, 2 edges
SHOWN_WITHIN = 3.0  # the page polls every second; the issue asks for 2 s, plus the browser's own
RED = "rgb(221, 34, 34)"  # .spof in chirp.css
FRONT = {1: "monolith", 3: "web", 5: "web"}  # the component whose pods answer the page
ARROWS = {
    1: {"client->monolith"},
    3: {"client->web", "web->db-primary", "web->db-replica"},
    5: {"client->edge", "edge->web", "web->redis", "web->db-shard-0-primary",
        "web->db-shard-0-replica", "web->db-shard-1-primary", "worker->redis"},
}

# Read in the page, in one go: what the diagram shows now, and who answered that poll.
DRAWN = """
return {served: (document.getElementById('served-pod') || {}).textContent,
  boxes: [...document.querySelectorAll('#live .component[data-component]')].map(box => ({
    name: box.dataset.component, spof: box.classList.contains('spof'),
    color: getComputedStyle(box).borderTopColor,
    pods: [...box.querySelectorAll('.pod')].map(p => ({name: p.dataset.pod,
      state: p.dataset.state, serving: p.classList.contains('serving')}))}))};
"""


def scalestage(cluster: Cluster, namespace: str) -> dict:
    return client.CustomObjectsApi(cluster.core.api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, INSTANCE)


def drawn(page) -> dict[str, dict]:
    """Component name -> {spof, color, pods: [{name, state, serving}]} as drawn now."""
    return {box["name"]: box for box in page.execute_script(DRAWN)["boxes"]}


def settled(page) -> dict | None:
    """The drawn components once every pod shown is Ready (none starting or going)."""
    boxes = drawn(page)
    pods = [p for box in boxes.values() for p in box["pods"]]
    return boxes if pods and all(p["state"] == "ready" for p in pods) else None


def all_ready(page, stage: int) -> dict | None:
    """The drawn components once each shows exactly its replicas, all Ready."""
    boxes = drawn(page)
    want = replicas(stage)
    if all(len(boxes.get(name, {}).get("pods", [])) == count
           and all(p["state"] == "ready" for p in boxes[name]["pods"])
           for name, count in want.items()):
        return boxes
    return None


class PortForward:
    """`kubectl port-forward svc/chirp` on a free local port (stopped with stop())."""

    def __init__(self, cluster: Cluster, namespace: str):
        self.proc = subprocess.Popen(
            [tool("kubectl"), "--context", cluster.context, "-n", namespace, "port-forward",
             f"svc/{INSTANCE}", ":80"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        line = self.proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not found:
            self.stop()
            raise AssertionError(f"kubectl port-forward did not start: {line!r}")
        self.url = f"http://127.0.0.1:{found.group(1)}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module", params=[1, 3, 5], ids=lambda n: f"stage{n}")
def stage(request, kind_cluster: Cluster, operator: str, say):
    """examples/stage-N.yaml Ready in a fresh namespace (front door ClusterIP only: the node port
    belongs to `make up`'s instance), port-forwarded; the namespace deleted afterwards."""
    number = request.param
    namespace = kind_cluster.create_namespace(f"e2e-page{number}-{uuid.uuid4().hex[:6]}",
                                              labels=RESTRICTED)
    manifest = yaml.safe_load((EXAMPLES / f"stage-{number}.yaml").read_text())
    manifest["spec"].pop("frontDoor", None)
    started = time.monotonic()
    kind_cluster.apply(manifest, namespace=namespace)
    forward = None
    try:
        def ready():
            found = scalestage(kind_cluster, namespace)
            status = found.get("status") or {}
            return (status.get("observedGeneration") == found["metadata"]["generation"]
                    and status.get("phase") == "Ready")
        try:
            wait_until(ready, timeout=READY_TIMEOUT, interval=1, what=f"stage {number} Ready",
                       tolerate=TRANSIENT)
        except BaseException:
            kind_cluster.show(namespace, "scalestages,pods")
            raise
        say(f"stage {number} Ready in {time.monotonic() - started:.0f} s")
        forward = PortForward(kind_cluster, namespace)
        yield {"number": number, "namespace": namespace, "url": forward.url}
    finally:
        if forward is not None:
            forward.stop()
        kind_cluster.delete_namespace(namespace)


@pytest.fixture(scope="module")
def page(stage):
    """The architecture page open in headless chromium, once every component's pods show
    Ready in it."""
    with browser.chromium() as driver:
        driver.get(stage["url"] + "/architecture")
        wait_until(lambda: all_ready(driver, stage["number"]), timeout=60, interval=0.5,
                   what="every component drawn with its pods Ready")
        yield driver


def test_components_spofs_arrows_and_the_serving_pod(stage, page, screenshots, say):
    number = stage["number"]
    seen = page.execute_script(DRAWN)
    boxes = {box["name"]: box for box in seen["boxes"]}
    assert set(boxes) - {"client"} == set(WORKLOADS[number])
    # SPOFs, and only they, are red
    assert {name for name, box in boxes.items() if box["spof"]} == set(SPOFS[number])
    assert {box["color"] for box in boxes.values() if box["spof"]} == {RED}
    assert RED not in {box["color"] for box in boxes.values() if not box["spof"]}
    # exactly one pod is highlighted: the one that answered the page's last poll, of the front
    serving = [(name, p["name"]) for name, box in boxes.items() for p in box["pods"]
               if p["serving"]]
    answered = seen["served"]
    assert serving == [(FRONT[number], answered)]
    arrows = set(page.execute_script(
        "return [...document.querySelectorAll('#live svg.arrows line')]"
        ".map(l => l.dataset.flow)"))
    assert ARROWS[number] <= arrows
    assert "live from the Kubernetes API" in page.find_element("id", "access").text
    assert page.find_element("id", "phase").text == "Ready"
    lesson = page.find_element("id", "lesson").text
    assert "What breaks here" in lesson and "What the next stage fixes" in lesson
    shares = page.find_element("css selector", '[data-share="pods"]').text
    assert answered in shares
    screenshots.take(page, f"e2e-stage-{number}")
    say(f"stage {number}: page drawn, {answered} answered; shares: {shares!r}")


def wait_for_a_change(page, what, condition, timeout: float = SHOWN_WITHIN):
    """How long the page took to show `condition` (seconds); fails past `timeout`."""
    started = time.monotonic()
    wait_until(lambda: condition(drawn(page)), timeout=timeout, interval=0.1,
               what=f"the page showing {what}")
    return time.monotonic() - started


def test_a_scale_out_is_drawn_within_seconds(stage, page, kind_cluster: Cluster, say):
    if stage["number"] != 3:
        pytest.skip("scaled out at stage 3 only (one wait for new pods is enough)")
    client.CustomObjectsApi(kind_cluster.core.api_client).patch_namespaced_custom_object(
        GROUP, VERSION, stage["namespace"], PLURAL, INSTANCE, {"spec": {"web": {"replicas": 4}}})
    # the operator writes the new document and the Deployment; the page reads both from the API
    took = wait_for_a_change(page, "a fourth web pod",
                             lambda boxes: len(boxes["web"]["pods"]) == 4, timeout=15)
    wait_until(lambda: all(p["state"] == "ready" for p in drawn(page)["web"]["pods"])
               and len(drawn(page)["web"]["pods"]) == 4, timeout=180, interval=0.5,
               what="four web pods Ready on the page", tolerate=TRANSIENT)
    say(f"stage 3: the fourth web pod drawn {took:.1f} s after the patch")


# Whose pod is killed at each stage: not the page's own at stage 1 (the monolith is all there is,
# and the port-forward ends with it).
KILLED = {3: "web", 5: "db-shard-1-replica"}


def test_a_deleted_pod_is_shown_going_and_back(stage, page, kind_cluster: Cluster, screenshots,
                                               say):
    """Kill a pod that is not serving the page: it is shown not Ready within seconds, and the
    component is back to all Ready (a Deployment's pod replaced under a new name, a
    StatefulSet's under the same one)."""
    number = stage["number"]
    if number not in KILLED:
        pytest.skip("stage 1 runs only the pod serving the page")
    component = KILLED[number]
    before = wait_until(lambda: settled(page), timeout=180, interval=0.5,
                        what="every pod Ready first")
    victim = next(p["name"] for p in before[component]["pods"] if not p["serving"])
    started = time.monotonic()
    kind_cluster.core.delete_namespaced_pod(victim, stage["namespace"])
    took = wait_for_a_change(page, f"{victim} not Ready", lambda boxes: any(
        p["name"] == victim and p["state"] != "ready" for p in boxes[component]["pods"])
        or victim not in {p["name"] for p in boxes[component]["pods"]})
    screenshots.take(page, f"e2e-stage-{number}-{component}-pod-deleted")
    want = len(before[component]["pods"])

    def back():
        pods = drawn(page)[component]["pods"]
        states = {p["name"]: p["state"] for p in pods}
        if len(pods) != want or set(states.values()) != {"ready"}:
            return None
        return states

    states = wait_until(back, timeout=240, interval=0.5, what=f"{component} all Ready again")
    back_after = time.monotonic() - started
    if component == "web":
        assert victim not in states  # replaced by a new pod
    else:
        assert victim in states  # a StatefulSet's pod comes back under its name
    screenshots.take(page, f"e2e-stage-{number}-{component}-back")
    say(f"stage {number}: {victim} shown not Ready {took:.1f} s after its deletion; "
        f"{component} all Ready again after {back_after:.0f} s")
