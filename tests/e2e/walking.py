"""The walk as a person drives it, for the e2e walk test and bench/walk.py: move a ScaleStage to a
stage (and shard count), wait until it is reached and Ready, and read what the load Job (`chirp
load`, run as `scalestage load` makes it) saw meanwhile."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kubernetes import client

from scalestage.names import GROUP, PLURAL, VERSION
from scalestage.specs import load
from tests.e2e.kindcluster import TRANSIENT, Cluster
from tests.polling import wait_until

INSTANCE = "chirp"
STEP_TIMEOUT = 600
# A step's losses can land a moment after its Ready (a pod pruned then, a request in flight):
# its figures are read this many seconds of load later, so they are not counted on the next step.
SETTLE_SECONDS = 5
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted"
              for mode in ("enforce", "warn", "audit")}

Position = tuple[int, int]  # (stage, shards): shards only at stage 5, else 0


def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.core.api_client)


def scalestage(cluster: Cluster, namespace: str) -> dict:
    return custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                        INSTANCE)


def label(position: tuple[int, int]) -> str:
    stage, shards = position
    return f"{stage}x{shards}" if shards else str(stage)


def set_position(cluster: Cluster, namespace: str, position: tuple[int, int]) -> None:
    """spec.stage, and database.shards at stage 5 (removed elsewhere: the CRD allows it only
    there; a merge patch's null removes it)."""
    stage, shards = position
    database = {"shards": shards} if stage == 5 and shards != 2 else None
    custom(cluster).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, INSTANCE,
        {"spec": {"stage": stage, "database": database}})


def reached(cluster: Cluster, namespace: str, position: tuple[int, int]) -> dict | None:
    """The status once the stage (and shard count) is reached, Ready, no move left running."""
    stage, shards = position
    found = scalestage(cluster, namespace)
    status = found.get("status") or {}
    done = (status.get("stage") == stage and status.get("phase") == "Ready"
            and status.get("observedGeneration") == found["metadata"]["generation"]
            and not status.get("migration") and not status.get("path")
            and sum("shard" in spof for spof in status.get("spofs") or []) == shards)
    return status if done else None


def pods(cluster: Cluster, namespace: str, selector: str) -> list:
    return cluster.core.list_namespaced_pod(namespace, label_selector=selector).items


def load_pod_name(cluster: Cluster, namespace: str) -> str:
    [pod] = pods(cluster, namespace, f"job-name={load.job_name(INSTANCE)}")
    return pod.metadata.name


def load_lines(cluster: Cluster, namespace: str) -> list[dict]:
    text = cluster.kubectl("logs", "-n", namespace, f"job/{load.job_name(INSTANCE)}",
                           "--tail=1500")
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def errors_between(lines: list[dict], start: float, end: float) -> dict:
    """Errors by kind in the ticks after `start` up to `end` (each tick counts its own second)."""
    out: dict[str, int] = {}
    for line in lines:
        if line.get("event") == "tick" and start < line.get("t", 0) <= end:
            for kind, count in (line.get("errors") or {}).items():
                out[kind] = out.get(kind, 0) + count
    return out


def answers_between(lines: list[dict], start: float, end: float) -> list[str]:
    """What the app said with the 5xx answers in that window (the load logs the first 10 of
    each minute)."""
    return [f"{line.get('action')} {line.get('status')}: {line.get('said')}"
            for line in lines if line.get("event") == "error" and start < line.get("t", 0) <= end]


def last_tick(cluster: Cluster, namespace: str) -> dict:
    ticks = [line for line in load_lines(cluster, namespace) if line.get("event") == "tick"]
    return ticks[-1] if ticks else {}


def walk_step(cluster: Cluster, namespace: str, current: Position, target: Position, *,
              on_poll: Callable[[dict, tuple[str, str]], None] | None = None,
              timeout: float = STEP_TIMEOUT) -> dict:
    """One step: apply the target, wait until it is reached; the step's figures as a row."""
    step = (label(current), label(target))
    before = last_tick(cluster, namespace)
    started = time.monotonic()
    set_position(cluster, namespace, target)

    def done():
        status = scalestage(cluster, namespace).get("status") or {}
        if on_poll:
            on_poll(status, step)
        if status.get("phase") == "Failed":
            raise AssertionError(f"step {step} failed: {status.get('conditions')}")
        return reached(cluster, namespace, target)

    try:
        status = wait_until(done, timeout=timeout, interval=1, what=f"{label(target)} reached",
                            tolerate=TRANSIENT)
    except BaseException:
        cluster.show(namespace, "scalestages,jobs,pods")
        raise
    seconds = time.monotonic() - started
    ready_at = last_tick(cluster, namespace).get("t", 0)
    after = wait_until(lambda: settled(cluster, namespace, ready_at), timeout=60, interval=1,
                       what="the load's figures after Ready", tolerate=TRANSIENT)
    moved = moves_data(current, target)
    lines = load_lines(cluster, namespace)  # the load's log, read once for the step's figures

    def grew(counter: str) -> int:
        return after.get(counter, 0) - before.get(counter, 0)

    return {
        "step": step,
        "seconds": seconds,
        "moved_data": moved,
        "sessions_lost": grew("sessions_lost"),
        "fresh_sessions_refused": grew("fresh_sessions_refused"),
        "errors": errors_between(lines, before.get("t", 0), after.get("t", 0)),
        "answers": answers_between(lines, before.get("t", 0), after.get("t", 0)),
        "pause": (status.get("lastMove") or {}).get("longestWritePauseSeconds") if moved else None,
    }


def settled(cluster: Cluster, namespace: str, ready_at: float) -> dict | None:
    """The load's latest tick once it is SETTLE_SECONDS past `ready_at`."""
    tick = last_tick(cluster, namespace)
    return tick if tick.get("t", 0) >= ready_at + SETTLE_SECONDS else None


def moves_data(current: Position, target: Position) -> bool:
    """1↔2, 4↔5 and a shard count change move data; the rest is in place."""
    layouts = {1: "monolith", 2: "one", 3: "one", 4: "one", 5: "shards"}
    return (layouts[current[0]], current[1]) != (layouts[target[0]], target[1])


def describe_step(row: dict) -> str:
    text = (f"{row['step'][0]}→{row['step'][1]}: Ready in {row['seconds']:.0f} s; sessions lost "
            f"{row['sessions_lost']} (fresh ones refused {row['fresh_sessions_refused']}); "
            f"errors {row['errors']}" + (f" {row['answers']}" if row.get("answers") else ""))
    return text + (f"; writes held {row['pause']} s" if row["pause"] is not None else "")
