"""NetworkPolicies: per stage, and during a data move, exactly the paths the stage uses are open.

The policies are read the way an enforcer reads them (a connection needs the client's egress and
the server's ingress; a pod no policy selects is open in that direction) and checked against the
pods the other builders really make, by their labels: every pair of pods (and DNS, the API
server, a pod of another namespace, a pod of another instance), on every port a server listens
on. The e2e check on a cluster with an enforcer is docs/network-policies.md.
"""

from dataclasses import dataclass, field, replace
from itertools import product

import pytest

from scalestage import specs
from scalestage.names import Names
from scalestage.specs import jobs, load, network

NAMESPACE = "shop"
CREDENTIALS = {key: "x" for key in specs.secrets.KEYS}
EVERYONE_OUTSIDE = ("outsider", "neighbour")  # another namespace's pod; another instance's web


@dataclass(frozen=True)
class Endpoint:
    name: str
    labels: dict = field(default_factory=dict)
    namespace: str = NAMESPACE
    ports: tuple = ()  # TCP ports it listens on
    pod: bool = True  # False: an address outside the pod network (the API server)


# --- an enforcer's reading of NetworkPolicy ------------------------------------------------------

SPEC, KUBE_ROUTER = "spec", "kube-router"  # the API's semantics; the enforcer's, a bit wider


def selects(selector, labels):
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        ok = {"In": present and value in expression.get("values", []),
              "NotIn": not present or value not in expression.get("values", []),
              "Exists": present, "DoesNotExist": not present}[expression["operator"]]
        if not ok:
            return False
    return True


def peer_matches(peer, endpoint):
    if "ipBlock" in peer:
        assert peer["ipBlock"]["cidr"] == "0.0.0.0/0" and "except" not in peer["ipBlock"]
        return True
    if not endpoint.pod:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": endpoint.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif endpoint.namespace != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), endpoint.labels)


def rule_allows(rule, other, port, protocol, key):
    ports = rule.get("ports")
    if ports and not any(p.get("protocol", "TCP") == protocol and p["port"] == port
                         for p in ports):
        return False
    peers = rule.get(key)
    return peers is None or any(peer_matches(p, other) for p in peers)


def direction_allows(policies, endpoint, other, port, protocol, direction, reading):
    if not endpoint.pod or endpoint.namespace != NAMESPACE:
        return True  # our policies hold only pods of their namespace
    kind, rules_key, peer_key = {"ingress": ("Ingress", "ingress", "from"),
                                 "egress": ("Egress", "egress", "to")}[direction]
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], endpoint.labels)
                 and kind in p["spec"]["policyTypes"]]
    if not selecting:
        return True
    if any(rule_allows(r, other, port, protocol, peer_key)
           for p in selecting for r in p["spec"].get(rules_key, [])):
        return True
    if reading == KUBE_ROUTER:
        # kube-router keeps a policy's ingress and egress rules in one chain and jumps there
        # for both directions of its pods: a rule of the other direction matches when the
        # other end is one of the policy's pods and this end one of the rule's peers
        back_rules, back_key = {"egress": ("ingress", "from"),
                                "ingress": ("egress", "to")}[direction]
        return any(other.pod and other.namespace == NAMESPACE
                   and selects(p["spec"]["podSelector"], other.labels)
                   and rule_allows(r, endpoint, port, protocol, back_key)
                   for p in selecting for r in p["spec"].get(back_rules, []))
    return False


def allowed(policies, client, server, port, protocol="TCP", reading=SPEC):
    return (direction_allows(policies, client, server, port, protocol, "egress", reading)
            and direction_allows(policies, server, client, port, protocol, "ingress", reading))


# --- the pods of a stage, from the builders ------------------------------------------------------

NAMES = Names("chirp")
DNS = Endpoint("dns", {"k8s-app": "kube-dns"}, namespace="kube-system", ports=(53,))
API = Endpoint("api", ports=(443, 6443), pod=False)
OUTSIDER = Endpoint("outsider", {"app": "curl"}, namespace="elsewhere")
NEIGHBOUR = Endpoint("neighbour", Names("other").labels("web"))
LISTENS = {"monolith": (8080, 5432), "web": (8080,), "edge": (8080,), "redis": (6379,),
           "db": (5432,)}


def pod_endpoints(manifests):
    """Each Deployment/StatefulSet/Job of the manifests as one endpoint named after it."""
    out = []
    for m in manifests:
        if m["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = m["spec"]["template"]["metadata"]["labels"]
            name = m["metadata"]["name"].removeprefix("chirp-")
            if m["kind"] == "Job":  # one endpoint per kind of Job: `move`, `load`
                name = labels["app.kubernetes.io/component"]
            out.append(Endpoint(name, labels, ports=LISTENS.get(
                labels["app.kubernetes.io/component"], ())))
    return out


def load_job():
    scalestage = {"apiVersion": "scalestage.dev/v1alpha1", "kind": "ScaleStage",
                  "metadata": {"name": "chirp", "namespace": NAMESPACE, "uid": "u"}}
    return load.build(scalestage, "scalestage/chirp:dev", load.LoadOptions())


def endpoints(applied, *extra_manifests):
    objects = specs.build_all(applied, NAMES, CREDENTIALS) + [load_job(), *extra_manifests]
    seen, out = set(), []
    for e in pod_endpoints(objects):
        if e.name not in seen:
            seen.add(e.name)
            out.append(e)
    return out + [DNS, API, OUTSIDER, NEIGHBOUR]


def open_paths(policies, everything, reading=SPEC):
    """Every `client->server:port` the policies allow, leaving out pairs that are none of this
    instance's business (neither end ours), a pod to itself and DNS (checked on its own)."""
    ours = {e.name for e in everything
            if e.pod and e.labels.get("app.kubernetes.io/instance") == "chirp"}
    out = set()
    for client, server in product(everything, everything):
        if client is server or not client.pod or DNS in (client, server):
            continue
        if client.name not in ours and server.name not in ours:
            continue
        for port in server.ports:
            if allowed(policies, client, server, port, reading=reading):
                out.add(f"{client.name}->{server.name}:{port}")
    return out


def paths(*lines):
    """`a,b->c,d:p` is every a/b to every c/d on port p."""
    out = set()
    for line in lines:
        clients, rest = line.split("->")
        servers, port = rest.rsplit(":", 1)
        for c, s in product(clients.split(","), servers.split(",")):
            out.add(f"{c}->{s}:{port}")
    return out


# Who reaches the front door's pods from outside this instance's egress rules.
FROM_OUTSIDE = "outsider,neighbour"
API_PATHS = ("{0}->api:443", "{0}->api:6443")


def api(component):
    return paths(*(p.format(component) for p in API_PATHS))


EXPECTED = {
    1: paths(f"{FROM_OUTSIDE},load->monolith:8080") | api("monolith"),
    2: paths(f"{FROM_OUTSIDE},load->web:8080", "web->db-primary:5432") | api("web"),
    3: paths(f"{FROM_OUTSIDE},load->web:8080", "web->db-primary,db-replica:5432",
             "db-replica->db-primary:5432") | api("web"),
    4: paths(f"{FROM_OUTSIDE},load->web:8080", "web->db-primary,db-replica:5432",
             "db-replica->db-primary:5432", "web->redis:6379") | api("web"),
    5: paths(f"{FROM_OUTSIDE},load->edge:8080",
             # web's HTTP port stays open for the API server's pod proxy (see network.py)
             f"{FROM_OUTSIDE},edge->web:8080",
             "web,worker->db-shard-0-primary,db-shard-0-replica,db-shard-1-primary,"
             "db-shard-1-replica:5432",
             "db-shard-0-replica->db-shard-0-primary:5432",
             "db-shard-1-replica->db-shard-1-primary:5432",
             "web,worker->redis:6379") | api("web"),
}


@pytest.mark.parametrize("reading", [SPEC, KUBE_ROUTER])
@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5])
def test_each_stage_opens_exactly_its_paths(plan, stage, reading):
    applied = plan(stage)
    policies = network.build(applied, NAMES)
    assert open_paths(policies, endpoints(applied), reading) == EXPECTED[stage]


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5])
def test_outside_pods_reach_no_database_nor_redis(plan, stage):
    applied = plan(stage, **({"database": {"readReplicas": 1}} if stage in (3, 4) else {}))
    policies = network.build(applied, NAMES)
    everything = endpoints(applied)
    # at stage 1 the monolith's Postgres port (its app reaches it on localhost)
    stores = [e for e in everything if set(e.ports) & {5432, 6379}]
    assert stores
    for outside, store in product((OUTSIDER, NEIGHBOUR), stores):
        for port in set(store.ports) & {5432, 6379}:
            assert not allowed(policies, outside, store, port), (outside.name, store.name)


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5])
def test_every_pod_of_the_instance_resolves_names(plan, stage):
    applied = plan(stage)
    policies = network.build(applied, NAMES)
    ours = [e for e in endpoints(applied) if e.labels.get("app.kubernetes.io/instance") == "chirp"]
    assert ours
    for pod, protocol in product(ours, ("UDP", "TCP")):
        assert allowed(policies, pod, DNS, 53, protocol), pod.name
    # ... and only the cluster's DNS: not a DNS server elsewhere
    rogue = Endpoint("rogue-dns", {"k8s-app": "kube-dns"}, namespace="elsewhere", ports=(53,))
    assert not any(allowed(policies, pod, rogue, 53, "UDP") for pod in ours)


def test_the_load_job_reaches_the_front_door_pods_at_every_stage(plan):
    job = next(e for e in pod_endpoints([load_job()]))
    assert job.name == "load"
    for stage, front in ((1, "monolith"), (2, "web"), (4, "web"), (5, "edge")):
        applied = plan(stage)
        server = next(e for e in endpoints(applied) if e.name == front)
        assert allowed(network.build(applied, NAMES), job, server, 8080)


def test_the_policies_of_another_instance_leave_ours_alone(plan):
    theirs = network.build(plan(4), Names("other"))
    for e in endpoints(plan(4)):
        for port in e.ports:
            assert allowed(theirs, OUTSIDER, e, port)


def test_objects_are_labelled_for_the_prune_and_named_per_group(plan):
    policies = network.build(plan(5), NAMES)
    assert all(p["metadata"]["labels"]["app.kubernetes.io/instance"] == "chirp"
               and p["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "scalestage-operator"
               for p in policies)
    assert [p["metadata"]["name"] for p in policies] == [
        "chirp-netpol-default", "chirp-netpol-web", "chirp-netpol-edge", "chirp-netpol-worker",
        "chirp-netpol-redis", "chirp-netpol-db-shard-0-primary",
        "chirp-netpol-db-shard-0-replica", "chirp-netpol-db-shard-1-primary",
        "chirp-netpol-db-shard-1-replica", "chirp-netpol-load"]
    assert all(p["spec"]["policyTypes"] == ["Ingress", "Egress"] for p in policies)


# --- during a data move -------------------------------------------------------------------------


def move_endpoints(applied, other, *kept):
    """The pods while a move runs: the applied plan's, the other side's databases, the Job (and
    what else is `kept`)."""
    return endpoints(applied, *kept, *specs.data_objects(other, NAMES),
                     jobs.move_job(NAMES, applied, other, "run"))


@pytest.mark.parametrize("reading", [SPEC, KUBE_ROUTER])
def test_move_1_to_2_while_copying(plan, reading):
    source, target = plan(1), plan(2)
    policies = network.build(source, NAMES) + network.move(source, target, NAMES)
    assert open_paths(policies, move_endpoints(source, target), reading) == EXPECTED[1] | paths(
        "move->monolith,db-primary:5432",
        "monolith->db-primary:5432",  # writes refused by the retired monolith follow the record
        "db-primary->monolith:5432",  # the copy: the target subscribes to the source
    )


@pytest.mark.parametrize("reading", [SPEC, KUBE_ROUTER])
def test_move_1_to_2_after_the_switch(plan, reading):
    source, target = plan(1), plan(2)
    policies = network.build(target, NAMES) + network.move(source, target, NAMES)
    assert open_paths(policies, move_endpoints(target, source), reading) == EXPECTED[2] | paths(
        "move->monolith,db-primary:5432",
        "web->monolith:5432",
        "monolith->db-primary:5432",  # the undo stream: the source subscribes to the target
        "db-primary->monolith:5432",
        # the front door stays on the monolith until web is ready (reconcile.keep_front_door)
        f"{FROM_OUTSIDE},load->monolith:8080",
    ) | api("monolith")


@pytest.mark.parametrize("reading", [SPEC, KUBE_ROUTER])
def test_move_5_to_4_keeps_the_edge_serving_until_the_switch(plan, reading):
    source, target = plan(5), plan(4)
    policies = network.build(target, NAMES) + network.move(source, target, NAMES)
    # under the target's plan, with the source's front kept (reconcile.keep_front_door)
    everything = move_endpoints(target, source, *specs.front_objects(source, NAMES))
    edge, web = (next(e for e in everything if e.name == n) for n in ("edge", "web"))
    job = next(e for e in everything if e.name == "load")
    for client, server in ((OUTSIDER, edge), (job, edge), (edge, web), (job, web)):
        assert allowed(policies, client, server, 8080, reading=reading), (client, server)
    for server in (e for e in everything if e.name.startswith("db-shard-") or e.name == "redis"):
        assert not allowed(policies, OUTSIDER, server, server.ports[0], reading=reading)
        assert not allowed(policies, edge, server, server.ports[0], reading=reading)


@pytest.mark.parametrize("reading", [SPEC, KUBE_ROUTER])
def test_move_4_to_5_opens_both_layouts_to_the_job_and_the_app_and_nothing_more(plan, reading):
    source, target = plan(4), plan(5)
    policies = network.build(source, NAMES) + network.move(source, target, NAMES)
    everything = move_endpoints(source, target)
    data = ["db-primary", "db-replica", "db-shard-0-primary", "db-shard-0-replica",
            "db-shard-1-primary", "db-shard-1-replica"]
    primaries = ["db-primary", "db-shard-0-primary", "db-shard-1-primary"]
    assert {e.name for e in everything} >= set(data) | {"move", "web", "redis"}
    expected = EXPECTED[4] | paths(
        f"move,web->{','.join(data)}:5432",
        # any database pod of either layout to any primary of either: the copy and undo streams,
        # the new replicas from their primaries
        f"{','.join(data)}->{','.join(primaries)}:5432",
    )
    expected = {p for p in expected if p.split("->")[0] != p.split("->")[1].split(":")[0]}
    assert open_paths(policies, everything, reading) == expected
    for store in (e for e in everything if e.name in data + ["redis"]):
        assert not allowed(policies, OUTSIDER, store, store.ports[0])
        assert not allowed(policies, NEIGHBOUR, store, store.ports[0])


def test_a_reshard_uses_both_name_sets(plan):
    source = plan(5)
    target = replace(plan(5, database={"shards": 3}), shard_set="b")
    policies = network.build(source, NAMES) + network.move(source, target, NAMES)
    everything = move_endpoints(source, target)
    job = next(e for e in everything if e.name == "move")
    for name in ("db-shard-1-primary", "db-b-shard-2-primary", "db-b-shard-2-replica"):
        server = next(e for e in everything if e.name == name)
        assert allowed(policies, job, server, 5432), name
        assert not allowed(policies, OUTSIDER, server, 5432), name
    new_replica = next(e for e in everything if e.name == "db-b-shard-2-replica")
    new_primary = next(e for e in everything if e.name == "db-b-shard-2-primary")
    assert allowed(policies, new_replica, new_primary, 5432)


def test_after_the_move_its_paths_close_again(plan):
    # the move's policies are extra objects: pruned, the stage's own remain
    policies = network.build(plan(2), NAMES)
    everything = move_endpoints(plan(2), plan(1))
    job = next(e for e in everything if e.name == "move")
    db = next(e for e in everything if e.name == "db-primary")
    assert not allowed(policies, job, db, 5432)
    # ... and all of them are named `<instance>-netpol-move-*`, none like a stage's own
    assert [p["metadata"]["name"] for p in network.move(plan(1), plan(2), NAMES)] == [
        "chirp-netpol-move-clients", "chirp-netpol-move-source", "chirp-netpol-move-target",
        "chirp-netpol-move-monolith", "chirp-netpol-move-web", "chirp-netpol-move-load"]
    assert [p["metadata"]["name"] for p in network.move(plan(4), plan(5), NAMES)] == [
        "chirp-netpol-move-clients", "chirp-netpol-move-source",
        "chirp-netpol-move-source-replicas", "chirp-netpol-move-target",
        "chirp-netpol-move-target-replicas", "chirp-netpol-move-web", "chirp-netpol-move-edge",
        "chirp-netpol-move-load"]
