"""NetworkPolicies on a running ScaleStage, shown with real TCP connections: the paths the stage
uses connect, a pod outside the instance reaches neither Postgres nor Redis, and the front door
still answers it (docs/network-policies.md). Not a test module: the journey
(tests/e2e/test_journey.py) checks the policies at every stage and probes the paths at stages 2–4,
on a cluster with an enforcer (`hack/cluster.sh up` installs one).
"""

from __future__ import annotations

import json

from kubernetes import client

from scalestage.names import INSTANCE as INSTANCE_LABEL
from scalestage.names import Names
from scalestage.specs import postgres, redis
from tests.e2e.kindcluster import TRANSIENT, Cluster
from tests.e2e.stage_checks import is_ready, stage_pods
from tests.e2e.walking import INSTANCE, scalestage
from tests.operator.expected_children import EXPECTED_CHILDREN
from tests.polling import WaitTimeout, wait_until

NAMES = Names(INSTANCE)
# A policy change reaches every node's rules within seconds: a path is judged once it is stable.
SETTLE_TIMEOUT = 60

# Run in a pod: one TCP connection to each host:port argument, and how it went.
CONNECT = r"""
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        out[target] = "connected"
    except ConnectionRefusedError:
        out[target] = "refused"
    except TimeoutError:
        out[target] = "timed out"
    except OSError as error:  # a name that does not resolve: a wrong check, not a denied path
        out[target] = f"{type(error).__name__}: {error}"
print(json.dumps(out))
"""
# Run in a pod: the HTTP status of one GET.
HTTP_STATUS = r"""
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).status)
"""
DENIED = {"refused", "timed out"}  # kube-router rejects (refused); other enforcers may drop
PROBED = (2, 3, 4)  # stages whose stores are one Postgres cluster (+ Redis at 4): `stores`


def stores(namespace: str, stage: int) -> list[str]:
    """The instance's Postgres and Redis Services as host:port, reachable from any namespace."""
    services = [(NAMES.rw("db"), postgres.PORT), (NAMES.ro("db"), postgres.PORT)]
    if stage >= 4:
        services.append((NAMES.of(redis.COMPONENT), redis.PORT))
    return [f"{name}.{namespace}.svc:{port}" for name, port in services]


def connections(cluster: Cluster, namespace: str, pod: str, targets: list[str]) -> dict[str, str]:
    return json.loads(cluster.exec(namespace, pod, "python3", "-c", CONNECT, *targets))


def wait_for_paths(cluster: Cluster, namespace: str, pod: str, targets: list[str], allowed: bool,
                   what: str) -> dict[str, str]:
    """Every target connected (allowed) or denied from the pod, waiting for the rules to settle."""
    seen: dict[str, str] = {}

    def as_expected() -> bool:
        seen.update(connections(cluster, namespace, pod, targets))
        return all((result == "connected") if allowed else (result in DENIED)
                   for result in seen.values())

    try:
        wait_until(as_expected, timeout=SETTLE_TIMEOUT, interval=2, what=what,
                   tolerate=TRANSIENT)
    except WaitTimeout as error:
        raise WaitTimeout(f"{error}; last seen: {seen}") from None
    return seen


def web_pod(cluster: Cluster, namespace: str, stage: int) -> str:
    ready = [p.metadata.name for p in stage_pods(cluster, namespace, stage).get("web", [])
             if is_ready(p)]
    assert ready, "no ready web pod"
    return ready[0]


def assert_policies_owned(cluster: Cluster, namespace: str, stage: int) -> list[str]:
    """The stage's NetworkPolicies exist, each controlled by the ScaleStage; their names."""
    owner_uid = scalestage(cluster, namespace)["metadata"]["uid"]
    found = client.NetworkingV1Api(cluster.core.api_client).list_namespaced_network_policy(
        namespace, label_selector=f"{INSTANCE_LABEL}={INSTANCE}").items
    expected = {child.split("/", 1)[1] for child in EXPECTED_CHILDREN[stage]
                if child.startswith("NetworkPolicy/")}
    assert {p.metadata.name for p in found} == expected
    for policy in found:
        assert any(ref.kind == "ScaleStage" and ref.uid == owner_uid and ref.controller
                   for ref in policy.metadata.owner_references or []), policy.metadata.name
    return sorted(expected)


def check_paths(cluster: Cluster, namespace: str, stage: int, outside_namespace: str,
                outside_pod: str = "client") -> str:
    """At stages 2–4: web reaches its databases (and Redis); a pod of another namespace (the
    tier's client pod: another tenant of the cluster) reaches none of them, yet the front door
    answers it. Returns what was seen."""
    assert stage in PROBED, stage
    targets = stores(namespace, stage)
    web = web_pod(cluster, namespace, stage)
    inside = wait_for_paths(cluster, namespace, web, targets, allowed=True,
                            what=f"{web} connecting to {targets}")
    outside = wait_for_paths(cluster, outside_namespace, outside_pod, targets, allowed=False,
                             what=f"another namespace denied {targets}")
    front_door = f"http://{NAMES.front_door}.{namespace}.svc/readyz"
    wait_until(lambda: cluster.exec(outside_namespace, outside_pod, "python3", "-c",
                                    HTTP_STATUS, front_door).strip() == "200",
               timeout=SETTLE_TIMEOUT, interval=2, what=f"{front_door} from another namespace",
               tolerate=TRANSIENT)
    return (f"from {web}: {inside}; from another namespace: {outside}, and {front_door} "
            "answers 200")
