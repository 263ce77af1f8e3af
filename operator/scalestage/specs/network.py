"""NetworkPolicies: every pod of an instance may talk only along the paths its stage uses.

One policy selects every pod of the instance and allows nothing in, and only DNS out; the others
each select one group of pods and say who may reach it (ingress) and what it may reach (egress).
Policies add up, so a pod may do exactly what the policies selecting it allow, and a connection
needs both the client's egress and the server's ingress.

    front (monolith | web | edge) <- anyone, on the HTTP port
    edge -> web                  web, worker -> every database pod of the plan, Redis
    replica -> its primary       load Job (scalestage load) -> whatever is behind the front door
    web, monolith -> the API server (the architecture page reads pods)

The HTTP port of web is open to anyone at stage 5 too, where the edge is in front: the API
server's pod proxy (bench_run reads the web pods' counters through it) comes from a node address,
which no pod selector names, and the front door may still lead to web while the edge starts.

A data move adds `move()`: the move Job and the app's pods reach the databases of both layouts,
those reach each other's primaries (the copy and undo streams are subscriptions, one way each),
and the fronts of both stages stay open (the front door switches only once the target's is ready).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..names import CLUSTER, COMPONENT, INSTANCE, ROLE, Names
from ..stages import MONOLITH, Plan, db_clusters
from . import app, edge, frontdoor, jobs, load, monolith, postgres, redis, web, workers
from .common import Manifest, metadata

KIND_COMPONENT = "network-policy"  # the policies' own component label
DB = "db"  # the Postgres pods' component label (specs/postgres.py)
DNS_PORT = 53
# The API server: the kubernetes Service's port, and the port it becomes after kube-proxy's DNAT
# (enforcers see the translated address; kind's API server listens on 6443 on the control plane).
API_PORTS = (443, 6443)
# Pods that run the app's code and so dial the databases (the monolith only during a move: its
# own database is on localhost, which no policy filters).
DB_CLIENTS = (web.COMPONENT, workers.COMPONENT)


# --- small pieces -------------------------------------------------------------------------------


def pods(names: Names, *components: str, **labels: str) -> dict[str, Any]:
    """A pod selector: this instance's pods of one component, or of any of several."""
    selector: dict[str, Any] = {"matchLabels": {INSTANCE: names.instance, **labels}}
    if len(components) == 1:
        selector["matchLabels"][COMPONENT] = components[0]
    else:
        selector["matchExpressions"] = [
            {"key": COMPONENT, "operator": "In", "values": sorted(components)}]
    return selector


def cluster_pods(names: Names, clusters: list[str]) -> dict[str, Any]:
    """Every Postgres pod (primaries and replicas) of the given clusters."""
    return {"matchLabels": {INSTANCE: names.instance, COMPONENT: DB},
            "matchExpressions": [{"key": CLUSTER, "operator": "In", "values": sorted(clusters)}]}


def data_pods(plan: Plan, names: Names) -> dict[str, Any]:
    """The pods holding a plan's data: the monolith, or every pod of its Postgres clusters."""
    if plan.data_layout == MONOLITH:
        return pods(names, monolith.COMPONENT)
    return cluster_pods(names, db_clusters(plan))


def primary_pods(plan: Plan, names: Names) -> dict[str, Any]:
    """The pods that take a plan's writes: the monolith, or its clusters' primaries."""
    if plan.data_layout == MONOLITH:
        return pods(names, monolith.COMPONENT)
    selector = cluster_pods(names, db_clusters(plan))
    selector["matchLabels"][ROLE] = "primary"
    return selector


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def rule(peers: list[dict[str, Any]] | None, ports: list[dict[str, Any]], direction: str
         ) -> dict[str, Any]:
    """An ingress (`from`) or egress (`to`) rule; peers None means any address."""
    out: dict[str, Any] = {}
    if peers is not None:
        out["from" if direction == "ingress" else "to"] = peers
    return out | {"ports": ports}


def peer(selector: dict[str, Any]) -> dict[str, Any]:
    return {"podSelector": selector}


def policy(names: Names, name: str, selector: dict[str, Any], *,
           ingress: Sequence[dict[str, Any]] = (), egress: Sequence[dict[str, Any]] = ()
           ) -> Manifest:
    """NetworkPolicy `<instance>-netpol-<name>`. Both policy types always: a group with no rule of
    one direction gets nothing from this policy there, and the default policy denies the rest."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(names, names.of(f"netpol-{name}"), KIND_COMPONENT),
        "spec": {
            "podSelector": selector,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": list(ingress),
            "egress": list(egress),
        },
    }


def dns_rule() -> dict[str, Any]:
    """Egress to the cluster's DNS (CoreDNS in kube-system, label k8s-app=kube-dns)."""
    return {
        "to": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
    }


def api_server_rule() -> dict[str, Any]:
    """Egress to the API server. Its address is the control plane's, which builders do not know;
    the ports narrow it instead."""
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": tcp(*API_PORTS)}


# --- the stage's policies -----------------------------------------------------------------------


def front_components(plan: Plan) -> list[str]:
    """The pods that answer HTTP for users: the monolith, web, and at stage 5 the edge too."""
    if plan.data_layout == MONOLITH:
        return [monolith.COMPONENT]
    return [web.COMPONENT] + ([edge.COMPONENT] if plan.stage.edge else [])


def http_port(component: str) -> int:
    """The container port a front component serves HTTP on."""
    return edge.PORT if component == edge.COMPONENT else app.PORT


def db_clients(plan: Plan) -> list[str]:
    return [web.COMPONENT] + ([workers.COMPONENT] if plan.workers else [])


def front_policy(names: Names, component: str, name: str,
                 extra_egress: Sequence[dict[str, Any]] = ()) -> Manifest:
    """A front component: anyone may reach its HTTP port; the monolith and web read the API server
    (the architecture page), the edge proxies to web."""
    egress: list[dict[str, Any]] = []
    if component in (monolith.COMPONENT, web.COMPONENT):
        egress.append(api_server_rule())
    if component == edge.COMPONENT:
        egress.append(rule([peer(pods(names, web.COMPONENT))], tcp(app.PORT), "egress"))
    return policy(names, name, pods(names, component),
                  ingress=[rule(None, tcp(http_port(component)), "ingress")],
                  egress=[*egress, *extra_egress])


def build(plan: Plan, names: Names) -> list[Manifest]:
    """The policies of a plan at rest (no data move running)."""
    everyone = {"matchLabels": {INSTANCE: names.instance}}
    out = [policy(names, "default", everyone, egress=[dns_rule()])]
    clusters = db_clusters(plan)
    clients = [peer(pods(names, *db_clients(plan)))]
    client_egress = []
    if clusters:
        client_egress.append(rule([peer(cluster_pods(names, clusters))], tcp(postgres.PORT),
                                  "egress"))
    if plan.runs_redis:
        client_egress.append(rule([peer(pods(names, redis.COMPONENT))], tcp(redis.PORT),
                                  "egress"))

    for component in front_components(plan):
        out.append(front_policy(names, component, component,
                                client_egress if component == web.COMPONENT else []))
    if plan.workers:
        out.append(policy(names, workers.COMPONENT, pods(names, workers.COMPONENT),
                          egress=client_egress))
    if plan.runs_redis:
        out.append(policy(names, redis.COMPONENT, pods(names, redis.COMPONENT),
                          ingress=[rule(clients, tcp(redis.PORT), "ingress")]))
    for cluster in clusters:
        primary = pods(names, DB, **{CLUSTER: cluster, ROLE: "primary"})
        replicas = pods(names, DB, **{CLUSTER: cluster, ROLE: "replica"})
        from_replicas = [peer(replicas)] if plan.read_replicas else []
        out.append(policy(names, f"{cluster}-primary", primary,
                          ingress=[rule(clients + from_replicas, tcp(postgres.PORT), "ingress")]))
        if plan.read_replicas:
            out.append(policy(names, f"{cluster}-replica", replicas,
                              ingress=[rule(clients, tcp(postgres.PORT), "ingress")],
                              egress=[rule([peer(primary)], tcp(postgres.PORT), "egress")]))
    # `scalestage load` (specs/load.py): made by the CLI, but its pods carry the instance label,
    # so the default policy holds them too; they may reach the front door's pods
    front, port = frontdoor.target(plan)
    out.append(policy(names, load.COMPONENT, pods(names, load.COMPONENT),
                      egress=[rule([peer(pods(names, front))], tcp(port), "egress")]))
    return out


def move(source: Plan, target: Plan, names: Names) -> list[Manifest]:
    """The extra policies while a data move from `source` to `target` runs (from its record until
    the source is retired), on top of build() of whichever plan is applied.

    The move Job and the app's pods (web, workers, or the monolith) reach every database pod of
    both layouts: a write refused by a retired source follows the routing record to the targets
    before the pod's own config changes. Every database pod of either layout reaches every primary
    of either layout: the copy streams (targets subscribe to sources), the undo streams after the
    cutover (the other way), and the new replicas streaming from their primaries while the source's
    plan, which knows nothing of them, is the one applied."""
    data = [peer(data_pods(source, names)), peer(data_pods(target, names))]
    primaries = [peer(primary_pods(source, names)), peer(primary_pods(target, names))]
    app_pods = pods(names, *DB_CLIENTS, monolith.COMPONENT, jobs.COMPONENT)
    pg = tcp(postgres.PORT)
    out = [policy(names, "move-clients", app_pods, egress=[rule(data, pg, "egress")])]
    # Primaries and replicas apart, and no policy whose own pods are among its ingress peers
    # unless that path is meant anyway: kube-router (docs/network-policies.md) evaluates a
    # policy's ingress rules for its pods' egress too.
    for side, plan in (("source", source), ("target", target)):
        out.append(policy(names, f"move-{side}", primary_pods(plan, names),
                          ingress=[rule([peer(app_pods), *data], pg, "ingress")],
                          egress=[rule(primaries, pg, "egress")]))
        if plan.read_replicas and plan.data_layout != MONOLITH:
            replicas = cluster_pods(names, db_clusters(plan))
            replicas["matchLabels"][ROLE] = "replica"
            out.append(policy(names, f"move-{side}-replicas", replicas,
                              ingress=[rule([peer(app_pods)], pg, "ingress")],
                              egress=[rule(primaries, pg, "egress")]))
    # The fronts of both stages: while the switch waits for the target's front to be ready, the
    # front door still leads to the source's (reconcile.keep_front_door) under the target's plan.
    fronts = [c for c in (monolith.COMPONENT, web.COMPONENT, edge.COMPONENT)
              if c in front_components(source) + front_components(target)]
    out += [front_policy(names, c, f"move-{c}") for c in fronts]
    out.append(policy(names, f"move-{load.COMPONENT}", pods(names, load.COMPONENT),
                      egress=[rule([peer(pods(names, *fronts))],
                                   tcp(*sorted({http_port(c) for c in fronts})), "egress")]))
    return out
