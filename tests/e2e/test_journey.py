"""The journey: one ScaleStage goes 1→2→3→4→5, is resharded to 3 shards and walks back down
4→3→2→1 on real pods, under load the whole time.

It starts as a user starts it (`kubectl apply -f examples/stage-1.yaml`, 200 seeded users), and a
load Job inside the cluster (`chirp load`, as `scalestage load --detach` makes it) signs up,
posts, follows and reads through the front door from then on. At each stage on the way up:
- what a person checks (stage_checks.py): real pods Ready under the restricted Pod Security
  Standard, a visit through the Service, the `kubectl get scalestages` columns, Chirp on
  http://localhost:8080; at stage 5 the edge's cache and the workers' fan-out;
- the architecture page in headless chromium (page_checks.py), a pod deleted at 3 and 5;
- its NetworkPolicies (netpol_checks.py): the stage's own, and at 2–4 the paths they leave open
  and those they close to a pod of another namespace, with real connections;
- `scalestage spof-check` (spof_checks.py): every component's pod killed under that load, its
  replacement held back; the sessions lesson at 3 and 4.
Data moves (1↔2, 4↔5, 2 → 3 shards) run the app's `chirp move` as Jobs: during 1→2 the copy
Job's pod is killed, during 4→5 the operator's pod. At the end the load reads every acknowledged
write back (each exactly once, through every move and every kill), and the seeded rows are
counted in the monolith the journey ends on.

Why one journey: on 2 cores a stage costs minutes to bring up, and every check here is of a stage
as users reach it. The pod set and children of a ScaleStage created directly at each stage are
the operator tier's (tests/operator), the app at each stage the services tier's.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import pytest
import yaml

from scalestage.specs import load
from scalestage.specs.load import LoadOptions
from tests.e2e.conftest import OPERATOR_NAMESPACE, RELEASE
from tests.e2e.kindcluster import REPO_ROOT, TRANSIENT, Cluster
from tests.e2e.netpol_checks import PROBED, assert_policies_owned, check_paths
from tests.e2e.page_checks import DELETED, check_deleted_pod_shown, check_drawing, opened
from tests.e2e.spof_checks import (
    a_deleted_primary_comes_back,
    any_web_pod_can_go,
    describe,
    sessions_live_in_the_pinned_pod,
    spof_check,
)
from tests.e2e.stage_checks import (
    check_localhost_8080,
    check_printer_columns,
    check_real_pods,
    check_stage_5,
    check_visit,
    printer_row,
)
from tests.e2e.walking import (
    INSTANCE,
    RESTRICTED,
    STEP_TIMEOUT,
    Position,
    describe_step,
    last_tick,
    load_lines,
    load_pod_name,
    pods,
    reached,
    scalestage,
    walk_step,
)
from tests.polling import wait_until

pytestmark = pytest.mark.slow

UP = (1, 2, 3, 4, 5)  # each stage checked where the journey reaches it; 5 with its 2 shards
DOWN: tuple[Position, ...] = ((5, 3), (4, 0), (3, 0), (2, 0), (1, 0))
# Sessions go only where the lesson is real (docs/contracts.md): their pod removed while they live
# in the web process (1↔2: the monolith and the web pod; 3→2: the pod a client is pinned to may be
# the one scaled in), or the session store changing (3↔4). Scaling out keeps the pod that holds
# them; from stage 4 they live in Redis, which 4↔5 and a reshard keep.
SESSIONS_KEPT = {("2", "3"), ("4", "5x2"), ("5x2", "5x3"), ("5x3", "4")}
# A session the app has just issued is honoured by the next request — except where a pod that
# keeps sessions in its process is scaled in: it can issue one in the second before the Service
# stops sending it requests (measured: 2 of 8 on 3→2 once).
FRESH_SESSIONS_KEPT = SESSIONS_KEPT | {("1", "2"), ("3", "4"), ("4", "3"), ("2", "1")}
SEED = {"users": 200, "posts": 5, "follows": 5}
# 20 requests a second: enough for a kill to show in every path each second. The read-back at the
# end covers every write of the journey (several thousand): it gets minutes.
LOAD = LoadOptions(users=4, concurrency=4, rate=20, duration=0, verify_timeout=300)
SEEDED_ROWS = ("SELECT (SELECT count(*) FROM users WHERE username LIKE 'seeded%'), "
               "(SELECT count(*) FROM posts p JOIN users u ON u.id = p.author_id "
               "WHERE u.username LIKE 'seeded%')")


@dataclass
class Journey:
    namespace: str
    owns_host_port: bool  # the front door holds node port 30080 (http://localhost:8080)
    position: Position = (1, 0)
    steps: list[dict] = field(default_factory=list)  # walk_step's rows, in order
    killed: dict[str, str] = field(default_factory=dict)  # "job"/"operator" -> pod killed


def node_port_holder(cluster: Cluster, node_port: int) -> str | None:
    """`namespace/name` of the Service holding this node port, if any."""
    for svc in cluster.core.list_service_for_all_namespaces().items:
        if any(p.node_port == node_port for p in (svc.spec.ports or [])):
            return f"{svc.metadata.namespace}/{svc.metadata.name}"
    return None


@pytest.fixture(scope="module")
def journey(kind_cluster: Cluster, operator: str, say):
    """examples/stage-1.yaml Ready in a fresh restricted namespace, seeded, the load running."""
    namespace = kind_cluster.create_namespace(f"e2e-journey-{uuid.uuid4().hex[:6]}",
                                              labels=RESTRICTED)
    manifest = yaml.safe_load((REPO_ROOT / "examples" / "stage-1.yaml").read_text())
    # One Service can hold the node port: where `make up`'s instance has it, this one stays on
    # its ClusterIP and the host port keeps answering for the other one.
    holder = node_port_holder(kind_cluster, manifest["spec"]["frontDoor"]["nodePort"])
    if holder:
        say(f"journey: node port held by {holder}; this instance stays ClusterIP-only")
        del manifest["spec"]["frontDoor"]
    try:
        kind_cluster.apply(manifest, namespace=namespace)
        wait_until(lambda: reached(kind_cluster, namespace, (1, 0)), timeout=STEP_TIMEOUT,
                   interval=1, what="stage 1 Ready", tolerate=TRANSIENT)
        kind_cluster.exec(namespace, f"{INSTANCE}-monolith-0", "chirp", "seed", "--users",
                          str(SEED["users"]), "--posts", str(SEED["posts"]), "--follows",
                          str(SEED["follows"]), "--prefix", "seeded", timeout=300)
        found = scalestage(kind_cluster, namespace)  # the load Job as `scalestage load` makes it
        kind_cluster.apply(load.build(found, load.app_image(found), LOAD), namespace=namespace)
        wait_until(lambda: last_tick(kind_cluster, namespace).get("writes_acked", 0) > 0,
                   timeout=120, interval=1, what="the load writing", tolerate=TRANSIENT)
        say(f"journey: stage 1 seeded ({SEED}), load running with {LOAD.users} users")
        yield Journey(namespace, owns_host_port=not holder)
    finally:
        kind_cluster.delete_namespace(namespace)


def kill_once(cluster: Cluster, journey: Journey, status: dict, step: tuple[str, str],
              say) -> None:
    """During 1→2: the copy Job's running pod, force-deleted; during 4→5: the operator's pod."""
    namespace, killed = journey.namespace, journey.killed
    migration = status.get("migration") or {}
    if step == ("1", "2") and "job" not in killed and migration.get("step") == "copying":
        running = [p for p in pods(cluster, namespace, "job-name=chirp-move-1-2-run")
                   if p.status.phase == "Running"]
        if running:
            name = running[0].metadata.name
            cluster.kubectl("delete", "pod", "-n", namespace, name, "--grace-period=0",
                            "--force", "--wait=false")
            killed["job"] = name
            say(f"  killed the copy Job's pod {name} during {migration.get('step')}")
    if step == ("4", "5x2") and "operator" not in killed and migration.get("step") in (
            "provisioning", "copying"):
        [operator_pod] = [p.metadata.name for p in pods(
            cluster, OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}")
            if p.metadata.deletion_timestamp is None][:1]
        cluster.kubectl("delete", "pod", "-n", OPERATOR_NAMESPACE, operator_pod, "--wait=false")
        killed["operator"] = operator_pod
        say(f"  deleted the operator pod {operator_pod} during {migration.get('step')}")


def walk(cluster: Cluster, journey: Journey, target: Position, say) -> dict:
    """One step of the journey under its load; its row is kept for the final verdict."""
    row = walk_step(cluster, journey.namespace, journey.position, target,
                    on_poll=lambda status, step: kill_once(cluster, journey, status, step, say))
    journey.steps.append(row)
    journey.position = target
    say("  " + describe_step(row))
    return row


@pytest.fixture(scope="module", params=UP, ids=lambda n: f"stage{n}")
def stage(request, journey: Journey, kind_cluster: Cluster, say) -> dict:
    """The journey moved on to this stage (5: with its default 2 shards), reached and Ready."""
    number = request.param
    target = (number, 2 if number == 5 else 0)
    if journey.position != target:
        walk(kind_cluster, journey, target, say)
    status = reached(kind_cluster, journey.namespace, target)
    assert status, f"stage {number} not Ready"
    return {"number": number, "namespace": journey.namespace, "status": status,
            "owns_host_port": journey.owns_host_port}


# --- at each stage on the way up ---------------------------------------------------------------

def test_the_stage_runs_its_real_pods(stage, kind_cluster: Cluster, say):
    found = check_real_pods(kind_cluster, stage["namespace"], stage["number"], stage["status"])
    say(f"stage {stage['number']}: pods " + ", ".join(
        f"{name} {len(group)}" for name, group in sorted(found.items())))


def test_a_visit_through_the_front_door(stage, kind_cluster: Cluster, client_pod: str, say):
    number, namespace = stage["number"], stage["namespace"]
    say(f"stage {number}: " + check_visit(kind_cluster, client_pod, namespace, number))
    check_printer_columns(kind_cluster, namespace, number)
    pod = check_localhost_8080(kind_cluster, namespace, number, stage["owns_host_port"])
    say(f"stage {number}: http://localhost:8080 served by {pod}")
    if number == 5:
        say("stage 5: " + check_stage_5(kind_cluster, namespace))


def test_network_policies_let_only_the_stages_paths_through(stage, kind_cluster: Cluster,
                                                          client_pod: str, say):
    number, namespace = stage["number"], stage["namespace"]
    names = assert_policies_owned(kind_cluster, namespace, number)
    say(f"stage {number}: {len(names)} NetworkPolicies owned by the ScaleStage")
    if number in PROBED:
        say(f"stage {number}: " + check_paths(kind_cluster, namespace, number,
                                               client_pod))


def test_the_architecture_page_in_a_browser(stage, kind_cluster: Cluster, screenshots, say):
    number, namespace = stage["number"], stage["namespace"]
    with opened(kind_cluster, namespace, number) as page:
        answered, shares = check_drawing(page, number)
        screenshots.take(page, f"e2e-stage-{number}")
        say(f"stage {number}: page drawn, {answered} answered; shares: {shares!r}")
        if number in DELETED:
            said = check_deleted_pod_shown(
                page, kind_cluster, namespace, DELETED[number],
                lambda name: screenshots.take(page, f"e2e-stage-{number}-{name}"))
            say(f"stage {number}: {said}")
    # the pod deleted above is back: the next check measures a whole stage
    wait_until(lambda: reached(kind_cluster, namespace, (number, 2 if number == 5 else 0)),
               timeout=STEP_TIMEOUT, interval=1, what=f"stage {number} Ready again",
               tolerate=TRANSIENT)


def test_spof_check_agrees_with_the_declared_spofs(stage, kind_cluster: Cluster, say):
    number, namespace = stage["number"], stage["namespace"]
    check, rows = spof_check(kind_cluster, namespace)
    say(f"stage {number} spof-check: {describe(rows)}")
    if number == 4:
        # Redis gone: reads keep answering from Postgres; the sessions it held are the cost
        assert rows["redis"]["readOk"] >= 0.995, rows["redis"]
    if number == 3:
        say("  stage 3: " + sessions_live_in_the_pinned_pod(kind_cluster, namespace, LOAD.users))
        say("  stage 3: " + a_deleted_primary_comes_back(kind_cluster, namespace))
    if number == 4:
        say("  stage 4: " + any_web_pod_can_go(kind_cluster, namespace))


# --- then down, and the verdict ----------------------------------------------------------------

def test_resharded_and_back_down_to_stage_1(journey: Journey, kind_cluster: Cluster, say):
    assert journey.position == (5, 2), f"the way up stopped at {journey.position}"
    for target in DOWN:
        walk(kind_cluster, journey, target, say)
        if target == (5, 3):
            say("  stage 5x3: " + check_stage_5(kind_cluster, journey.namespace))


def test_every_acknowledged_write_kept_through_the_journey(journey: Journey,
                                                          kind_cluster: Cluster, say):
    namespace = journey.namespace
    load_pod = load_pod_name(kind_cluster, namespace)
    kind_cluster.exec(namespace, load_pod, "touch", load.STOP_FILE)
    wait_until(lambda: kind_cluster.core.read_namespaced_pod(load_pod, namespace).status.phase
               in ("Succeeded", "Failed"), timeout=LOAD.verify_timeout + 120, interval=2,
               what="the load verified", tolerate=TRANSIENT)
    [summary] = [line for line in load_lines(kind_cluster, namespace)
                 if line.get("event") == "summary"]
    say(f"journey: load summary {json.dumps(summary, sort_keys=True)}")
    assert summary["writes_acked"] > 0
    # Through every move and every kill: no acknowledged write lost or doubled, and no write the
    # load was told failed shows up afterwards.
    assert summary["lost"] == 0 and summary["duplicated"] == 0, summary
    assert summary["failed_present"] == 0, summary
    assert journey.killed.keys() == {"job", "operator"}, f"kills done: {journey.killed}"
    assert [row["step"][1] for row in journey.steps] == ["2", "3", "4", "5x2", "5x3", "4", "3",
                                                         "2", "1"]
    for row in journey.steps:
        # No write refused because data moved (the app answers 5xx/503 then). (The kills between
        # the steps fail writes on purpose: measured by spof-check, not counted here.)
        assert row["errors"].get("write_failed", 0) == 0, (row["step"], row["errors"],
                                                           row["answers"])
        if row["step"] in FRESH_SESSIONS_KEPT:
            assert row["fresh_sessions_refused"] == 0, row
        if row["step"] in SESSIONS_KEPT:
            assert row["sessions_lost"] == 0, row
        else:
            # measured: once per user, twice on 2→1 (the web pod's drain, then the monolith)
            assert row["sessions_lost"] <= 2 * LOAD.users, row
        # Every data move reports how long it held writes — except where the Job's pod was
        # killed: the status says "copying" a moment after the cutover may have begun, and a pod
        # killed while holding the writes cannot record for how long (its rerun finishes).
        if row["moved_data"] and row["step"] != ("1", "2"):
            assert row["pause"] is not None, row
    # The seeded rows, counted in the monolith the journey ended on: every one still there, once.
    counted = kind_cluster.kubectl("exec", "-n", namespace, f"{INSTANCE}-monolith-0", "-c",
                                   "postgres", "--", "psql", "-U", "chirp", "-d", "chirp", "-At",
                                   "-c", SEEDED_ROWS)
    users, posts = (int(n) for n in counted.strip().split("|"))
    assert (users, posts) == (SEED["users"], SEED["users"] * SEED["posts"])


def test_printer_row_splits_on_columns():
    table = ("NAME    STAGE   TARGET   PHASE   PROGRESS   SPOFS                AGE\n"
             "chirp   4       4        Ready   4/4        db-primary, redis    2m\n")
    assert printer_row(table) == {"NAME": "chirp", "STAGE": "4", "TARGET": "4", "PHASE": "Ready",
                                  "PROGRESS": "4/4", "SPOFS": "db-primary, redis", "AGE": "2m"}
