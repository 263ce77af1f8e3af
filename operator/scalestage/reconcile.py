"""One level-triggered reconcile of one ScaleStage: read, decide (pure parts), apply, report.

Computed from the spec and what exists now, never from "what changed", so the same function serves
creation, updates, resumption after a restart and the periodic drift check. `Operator` is what one
operator process owns (its API client, default images, a lock per object) and runs the passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes import client, config
from kubernetes.dynamic.resource import Resource

from . import apply, moves, specs, stages, status, transitions
from .names import Names
from .specs import jobs, network, redis, secrets, web

log = logging.getLogger(__name__)

SESSION_STORES = {"process": "the web process", "redis": "Redis"}  # for Events
HELD = "held"  # an Outcome's action when a child's name is taken and nothing was applied
IMAGE_ENV = "SCALESTAGE_IMAGE_{}"  # SCALESTAGE_IMAGE_APP, …: default images when a spec names none


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the ScaleStage (the handler posts it through kopf)."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    action: str  # create | in-place | move | refused | held
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status_written: bool = False
    writes: int = 0  # write calls made (0 when nothing changed)
    taken: list[apply.Taken] = field(default_factory=list)  # children's names others hold


class Operator:
    """One operator process: its API resources (one client), its default images, and a lock per
    ScaleStage (a timer and a change handler may fire together: one reconcile at a time each).
    Created in kopf's startup handler and kept in kopf's memo; nothing here is module-global."""

    def __init__(self, resources: Mapping[str, Resource],
                 default_images: Mapping[str, str] | None = None,
                 logs: apply.LogReader | None = None):
        self.resources = resources  # apply.discover()
        self.default_images = dict(default_images or {})
        self.logs = logs
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_environment(cls) -> Operator:
        """In a pod: its service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube)."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
        api = client.ApiClient(configuration)
        api.user_agent = apply.FIELD_MANAGER
        return cls(apply.discover(api), default_images_from(os.environ), apply.pod_log_reader(api))

    def lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def reconcile(self, namespace: str, name: str) -> tuple[dict, Outcome] | None:
        """One pass over the ScaleStage as it is now; None when it is gone or going."""
        with self.lock(namespace, name):
            cluster = apply.Cluster(self.resources, self.logs)
            # Fresh from the API server (a read): a timer and a change handler queued behind each
            # other must not act on the status the other one has just replaced.
            current = cluster.get_scalestage(namespace, name)
            if current is None or current["metadata"].get("deletionTimestamp"):
                return None
            outcome = reconcile(cluster, current, self.default_images)
            outcome.writes = cluster.writes
            return current, outcome


def default_images_from(environ: Mapping[str, str]) -> dict[str, str]:
    return {component: environ[IMAGE_ENV.format(component.upper())]
            for component in stages.DEFAULT_IMAGES
            if environ.get(IMAGE_ENV.format(component.upper()))}


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workloads_by_component(observed: Mapping, instance: str) -> dict[str, Mapping]:
    """Observed Deployments/StatefulSets keyed by component name (`web`, `db-primary`, …)."""
    prefix = f"{instance}-"
    return {
        name[len(prefix):]: obj
        for (kind, name), obj in observed.items()
        if kind in ("Deployment", "StatefulSet") and name.startswith(prefix)
    }


def plan_at(spec: Mapping, stage: int, default_images: Mapping[str, str] | None,
            shards: int | None = None, shard_set: str = "") -> stages.Plan:
    """The plan of one stage of the walk: the spec's overrides over that stage's defaults (those
    the stage does not use are ignored), with the shard count and name set that run (or will)."""
    at = {**spec, "stage": stage}
    if shards:
        at["database"] = {**(spec.get("database") or {}), "shards": shards}
    plan = stages.resolve(at, default_images)
    if plan.data_layout == stages.SHARDED:
        plan = dataclasses.replace(plan, shard_set=shard_set)
    return plan


def reconcile(
    cluster: apply.Cluster,
    body: Mapping,
    default_images: Mapping[str, str] | None = None,
) -> Outcome:
    meta = body["metadata"]
    names = Names(meta["name"])
    previous = dict(body.get("status") or {})
    spec = body["spec"]
    observed = apply.observe(cluster, meta["namespace"], names.children_selector, meta["uid"])
    if previous.get("migration"):
        return continue_move(cluster, body, observed, default_images)

    layout = transitions.observed_layout(
        obj for (kind, _), obj in observed.items() if kind == "StatefulSet")
    shard_set = layout.shard_set if layout else ""  # the names the running shards have
    target = plan_at(spec, spec["stage"], default_images, shard_set=shard_set)
    reached = previous.get("stage") if previous.get("stage") in stages.STAGES else None
    reached_ready = False
    if reached is not None and layout is not None and layout != transitions.MIXED:
        reached_plan = plan_at(spec, reached, default_images, layout.shards or None, shard_set)
        reached_ready = stage_ready(reached_plan, observed, names)
    # A new spec starts a new walk, whose first step needs no Ready stage behind it (a user may
    # be moving away from a broken one); every later step does.
    new_request = meta.get("generation", 0) != previous.get("walkGeneration")
    step = transitions.next_step(layout, target, reached, reached_ready or new_request)
    if step.action == transitions.REFUSED:
        return refuse(cluster, body, previous, step)
    if step.action == transitions.MOVE:
        source = plan_at(spec, step.source, default_images, layout.shards or None, shard_set)
        # shards to shards: the new ones in the other name set, beside the old ones
        resharding = source.data_layout == stages.SHARDED
        destination = plan_at(spec, step.stage, default_images, shard_set=(
            stages.other_shard_set(shard_set) if resharding else ""))
        record = {
            "from": source.number, "to": destination.number,
            "fromShards": source.shards, "toShards": destination.shards,
            "fromShardSet": source.shard_set, "toShardSet": destination.shard_set,
            "step": moves.PROVISIONING, "startedAt": now(),
        }
        # The decision is recorded before anything is done: from here the move is finished
        # whatever the spec says next (docs: a walk never leaves data half-moved).
        walk_generation = meta.get("generation", 0)
        cluster.patch_status(body, {"migration": record, "walkGeneration": walk_generation})
        previous["migration"] = {**record, "step": None}  # so its first step is announced
        previous["walkGeneration"] = walk_generation
        return continue_move(cluster, {**body, "status": previous}, observed, default_images)

    plan = target if step.stage == target.number else plan_at(spec, step.stage, default_images,
                                                              shard_set=shard_set)
    outcome = Outcome(step.action)
    desired = specs.build_all(plan, names, credentials(observed, names))
    keep = {"keep_affinity": keeps_affinity(plan, desired, observed, body, names),
            "keep_redis": keeps_redis(plan, desired, observed, body, names)}
    if any(keep.values()):
        plan = dataclasses.replace(plan, **keep)
        desired = specs.build_all(plan, names, credentials(observed, names))
    observed = converge(cluster, body, desired, observed, outcome)
    if outcome.taken:
        return hold(cluster, body, previous, outcome)
    new_status = status.summarize(plan, workloads_by_component(observed, names.instance),
                                  meta.get("generation", 0), previous, now())
    new_status.update(status.walk(plan.number, target.number, new_status, now()))
    new_status["walkGeneration"] = meta.get("generation", 0)
    if previous.get("stage") != plan.number:
        outcome.events.append(Event("Normal", "StageChanged",
                                    stage_change_message(previous.get("stage"), plan)))
    write_status(cluster, body, previous, new_status, outcome)
    return outcome


def web_rolling(plan: stages.Plan, desired: list, observed: Mapping, owner: Mapping,
                names: Names) -> bool:
    """The web Deployment is about to roll (its template changes now) or still rolling."""
    deployment = observed.get(("Deployment", names.of(web.COMPONENT)))
    wanted = next((m for m in desired
                   if apply.key(m) == ("Deployment", names.of(web.COMPONENT))), None)
    if deployment is None or wanted is None:
        return False
    tier = stages.Component(web.COMPONENT, "Deployment", plan.web_replicas)
    return (apply.needs_apply(apply.owned(wanted, owner), deployment)
            or status.rolling_out(tier, deployment))


def keeps_affinity(plan: stages.Plan, desired: list, observed: Mapping, owner: Mapping,
                   names: Names) -> bool:
    """Keep the web Service's ClientIP affinity while its pods roll from sessions in the process
    to sessions in Redis (3 → 4): the affinity is there now, the stage drops it, and the web
    Deployment is about to roll or still rolling."""
    service = observed.get(("Service", names.of("web")))
    if plan.stage.sticky_sessions or not service:
        return False
    if (service.get("spec") or {}).get("sessionAffinity") != "ClientIP":
        return False
    return web_rolling(plan, desired, observed, owner, names)


def keeps_redis(plan: stages.Plan, desired: list, observed: Mapping, owner: Mapping,
                names: Names) -> bool:
    """Keep Redis while web pods that keep their sessions (and limiter counts) in it still run
    (4 → 3): pruning it first would log their users out and refuse logins until they are gone."""
    if plan.stage.redis or ("Deployment", names.of(redis.COMPONENT)) not in observed:
        return False
    return web_rolling(plan, desired, observed, owner, names)


def continue_move(cluster: apply.Cluster, body: Mapping, observed: Mapping,
                  default_images: Mapping[str, str] | None) -> Outcome:
    """One pass of the data move recorded in status.migration (moves.py has the steps)."""
    meta = body["metadata"]
    names = Names(meta["name"])
    previous = dict(body["status"])
    record = dict(previous["migration"])
    spec = body["spec"]
    source = plan_at(spec, record["from"], default_images, record.get("fromShards") or None,
                     record.get("fromShardSet", ""))
    target = plan_at(spec, record["to"], default_images, record.get("toShards") or None,
                     record.get("toShardSet", ""))
    job_names = {action: jobs.job_name(names, source, target, action)
                 for action in (moves.COPY, moves.COMPLETE)}
    source_data = specs.data_objects(source, names)
    seen = moves.Observed(
        target_databases_ready=all(
            status.workload_ready(m, observed.get(apply.key(m)))
            for m in specs.data_objects(target, names) if apply.is_workload(m)),
        target_stage_ready=stage_ready(target, observed, names),
        source_data_present=any(apply.holds_data(m) and apply.key(m) in observed
                                for m in source_data),
        copy_job=moves.job_state(observed.get(("Job", job_names[moves.COPY]))),
        complete_job=moves.job_state(observed.get(("Job", job_names[moves.COMPLETE]))),
    )
    current = moves.step(seen)
    outcome = Outcome(transitions.MOVE)
    creds = credentials(observed, names)
    if current == moves.DONE:
        return finish_move(cluster, body, observed, record, target, creds, outcome)

    serving, other = (target, source) if moves.target_serves(current, seen) else (source, target)
    desired = specs.build_all(serving, names, creds)
    # the paths between both layouts, every step until DONE (finish_move builds without them,
    # so they are pruned with the move's Jobs); applied before the other layout's databases, so
    # their pods start with their paths open
    desired += network.move(source, target, names)
    if current != moves.RETIRING:
        desired += specs.data_objects(other, names)
    if serving is target and current == moves.SWITCHING:
        desired = keep_front_door(desired, source, target, observed, names)
    desired += [jobs.move_job(names, source, target, action)
                for action in moves.jobs_wanted(current, seen)]
    observed = converge(cluster, body, desired, observed, outcome)
    if outcome.taken:  # the move waits (its record stays): no step runs on half its objects
        return hold(cluster, body, previous, outcome)
    if current == moves.RETIRING:
        # the move is complete and the target stage ready: the source's data goes, volumes too
        for manifest in source_data:
            if apply.holds_data(manifest) and (found := observed.get(apply.key(manifest))):
                cluster.delete(found)
                outcome.pruned.append("/".join(apply.key(manifest)))

    record["step"] = current
    copy_line = (cluster.last_log_line(meta["namespace"], job_names[moves.COPY])
                 if seen.copy_job != moves.ABSENT else None)
    record.update(moves.progress(copy_line))
    if current == moves.FAILED:
        failed = next(name for action, name in job_names.items()
                      if moves.job_state(observed.get(("Job", name))) == moves.JOB_FAILED)
        line = (copy_line if failed == job_names[moves.COPY]  # its log is read once a pass
                else cluster.last_log_line(meta["namespace"], failed)) or {}
        why = (line.get("reason") or moves.failure_message(observed.get(("Job", failed)))
               or "see its log")
        record["message"] = f"Job {failed} failed: {why}; delete the Job to run the step again"
    new_status = status.summarize(serving, workloads_by_component(observed, names.instance),
                                  meta.get("generation", 0), previous, now())
    new_status.update(status.moving(source.number, target.number, record,
                                    spec["stage"], new_status, now()))
    before = (previous.get("migration") or {}).get("step")
    if before != current:
        outcome.events.append(Event(
            "Warning" if current == moves.FAILED else "Normal",
            "MoveFailed" if current == moves.FAILED else "Migrating",
            move_event_message(source, target, current, record)))
    write_status(cluster, body, previous, new_status, outcome)
    return outcome


def keep_front_door(desired: list, source: stages.Plan, target: stages.Plan, observed: Mapping,
                    names: Names) -> list:
    """Users stay on the source's front (the front door Service and what answers behind it) until
    the target's front has ready pods: switching the Service to pods still starting would refuse
    connections (measured: 6–11 per move at 20 req/s before this)."""
    front = specs.front_workload(target, names)
    if status.workload_ready(front, observed.get(apply.key(front))):
        return desired
    kept = {apply.key(m): m for m in specs.front_objects(source, names)}
    # the front door is the source's; the source's front workload is kept unless the target runs
    # one of the same name (4→5: the web Deployment rolls to the target's pods, serving as it goes)
    out = [kept.get(apply.key(m), m) if m["kind"] == "Service"
           and m["metadata"]["name"] == names.front_door else m for m in desired]
    present = {apply.key(m) for m in out}
    return out + [m for key, m in kept.items() if key not in present]


def finish_move(cluster: apply.Cluster, body: Mapping, observed: Mapping, record: dict,
                target: stages.Plan, creds: Mapping[str, str], outcome: Outcome) -> Outcome:
    """The source's data is gone: the target stage is reached. Its Jobs are pruned now."""
    meta = body["metadata"]
    names = Names(meta["name"])
    previous = dict(body["status"])
    observed = converge(cluster, body, specs.build_all(target, names, creds), observed, outcome)
    if outcome.taken:
        return hold(cluster, body, previous, outcome)
    new_status = status.summarize(target, workloads_by_component(observed, names.instance),
                                  meta.get("generation", 0), previous, now())
    new_status.update(status.walk(target.number, body["spec"]["stage"], new_status, now()))
    finished = {k: v for k, v in record.items() if k not in ("step", "message", "lagBytes",
                                                              "lagSeconds")}
    new_status["lastMove"] = {**finished, "finishedAt": now()}
    new_status["migration"] = None  # merge patch: removes the field
    outcome.events.append(Event("Normal", "StageChanged",
                                stage_change_message(record["from"], target, record)))
    write_status(cluster, body, previous, new_status, outcome)
    return outcome


def converge(cluster: apply.Cluster, body: Mapping, desired: list, observed: Mapping,
             outcome: Outcome) -> Mapping:
    """Apply what differs, prune the rest; the children as they are afterwards. Nothing at all
    when a child's name belongs to another object (`outcome.taken`): our children refer to each
    other by name (a web pod to `<name>-db-rw`), so a partial stage could talk to someone else's;
    the caller then holds the pass (`hold`)."""
    meta = body["metadata"]
    outcome.taken = apply.names_taken(cluster, desired, observed, body)
    if outcome.taken:
        return observed
    applied, pruned = apply.sync(cluster, desired, observed, body)
    outcome.applied += applied
    outcome.pruned += pruned
    if not (applied or pruned):
        return observed
    log.info("%s/%s: applied %s; pruned %s", meta["namespace"], meta["name"],
             applied or "nothing", pruned or "nothing")
    # Read back what we changed, so the status reflects it (reads only).
    observed = apply.observe(cluster, meta["namespace"], Names(meta["name"]).children_selector,
                             meta["uid"])
    refresh_architecture(cluster, body, observed, applied)
    return observed


def refresh_architecture(cluster: apply.Cluster, body: Mapping, observed: Mapping,
                         applied: list[str]) -> None:
    """A changed architecture document reaches the running web pods now, not on the kubelet's
    next pass, so the stage they act on follows the status within a second or so
    (apply.pods_to_refresh)."""
    meta = body["metadata"]
    names = Names(meta["name"])
    if f"ConfigMap/{names.architecture}" not in applied:
        return
    version = apply.document_version(observed.get(("ConfigMap", names.architecture)))
    if version is None:
        return
    pods = cluster.list("Pod", meta["namespace"], names.pod_selector(web.COMPONENT))
    for pod in apply.pods_to_refresh(pods, version):
        cluster.patch_pod(meta["namespace"], pod, apply.refresh_patch(version))


def credentials(observed: Mapping, names: Names) -> dict[str, str]:
    return secrets.credentials(observed.get(("Secret", names.credentials)))


def stage_ready(plan: stages.Plan, observed: Mapping, names: Names) -> bool:
    """Every component of the plan ready and rolled out."""
    workloads = workloads_by_component(observed, names.instance)
    return status.plan_ready(plan, workloads)


def stage_change_message(before: int | None, plan: stages.Plan, move: Mapping | None = None) -> str:
    if not before or before not in stages.STAGES:
        return transitions.describe(plan.number)
    message = f"{transitions.describe(before)} → {transitions.describe(plan.number)}"
    if move:
        message += f": data moved ({moves.summary(move)})"
    old_sessions = stages.STAGES[before].session_backend
    if old_sessions != plan.stage.session_backend:
        message += (f"; sessions now live in {SESSION_STORES[plan.stage.session_backend]}, not "
                    f"in {SESSION_STORES[old_sessions]}: logged-in users log in once more")
    return message


def move_event_message(source: stages.Plan, target: stages.Plan, current: str,
                       record: Mapping) -> str:
    what = {
        moves.PROVISIONING: "creating the target's databases; the source stage keeps serving",
        moves.COPYING: "copying while writes go on, then the cutover (writes held briefly)",
        moves.SWITCHING: f"cut over; applying {transitions.describe(target.number)}",
        moves.COMPLETING: "target stage ready; retiring the undo streams",
        moves.RETIRING: "deleting the source's databases and their volumes",
        moves.FAILED: record.get("message", "a move Job failed"),
    }[current]
    return (f"move {transitions.describe(source.number)} → "
            f"{transitions.describe(target.number)}: {current}: {what}")


def refuse(cluster: apply.Cluster, body: Mapping, previous: dict,
           step: transitions.Step) -> Outcome:
    """Change nothing; say why once (condition + Warning event), then stay quiet while it holds."""
    outcome = Outcome(step.action)
    blocked = status.condition("Progressing", False, step.reason, step.message)
    new_status = status.with_condition(previous, blocked, now())
    new_status["observedGeneration"] = body["metadata"].get("generation", 0)
    already_said = any(c.get("reason") == step.reason and c.get("message") == step.message
                       for c in previous.get("conditions") or [])
    if not already_said:
        outcome.events.append(Event("Warning", "StageChangeRefused", step.message))
    write_status(cluster, body, previous, new_status, outcome)
    return outcome


def hold(cluster: apply.Cluster, body: Mapping, previous: Mapping, outcome: Outcome) -> Outcome:
    """Nothing applied because a child's name belongs to another object: say so (phase, the
    Ready condition, one Warning event while it holds) and try again next pass. The name's owner
    is never written to."""
    taken = [(t.child, t.holder) for t in outcome.taken]
    new_status = status.held(taken, body["metadata"].get("generation", 0), previous, now())
    [ready] = [c for c in new_status["conditions"] if c["type"] == "Ready"]
    already_said = any(c.get("type") == "Ready" and c.get("reason") == ready["reason"]
                       and c.get("message") == ready["message"]
                       for c in previous.get("conditions") or [])
    if not already_said:
        outcome.events.append(Event("Warning", status.NAME_TAKEN, ready["message"]))
        log.warning("%s/%s: %s", body["metadata"]["namespace"], body["metadata"]["name"],
                    ready["message"])
    outcome.action = HELD
    write_status(cluster, body, previous, new_status, outcome)
    return outcome


def write_status(cluster: apply.Cluster, body: Mapping, previous: Mapping, new: Mapping,
                 outcome: Outcome) -> None:
    if changed(previous, new):
        cluster.patch_status(body, new)
        outcome.status_written = True


def changed(previous: Mapping, new: Mapping) -> bool:
    return any(previous.get(k) != v for k, v in new.items())
