"""`scalestage chaos kill` and `scalestage spof-check`: kill real pods under the load Job and
measure what users saw (chaos.py judges; this module only talks to the cluster).

A kill uses the load Job that runs (`scalestage load`), or starts one for the measurement and
stops it afterwards: then its verdict (every acknowledged write read back exactly once) comes
with the report.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import chaos, loadjob
from .names import GROUP, PLURAL, VERSION, selector_string

WINDOW_SECONDS = 180  # the longest a kill is watched for recovery
BASELINE_TIMEOUT = 180  # for the load's first requests (a new load Job's pod must start)
POLL_SECONDS = 1.0
HOLD_EFFECTIVE_TIMEOUT = 30  # for the API server's admission to see a new ResourceQuota
# The load a kill starts when none runs: enough requests each second to see a path fail.
DEFAULT_LOAD = {"users": 4, "concurrency": 4, "rate": 20.0}

Say = Callable[[str], None]


class ChaosError(Exception):
    """A request that cannot be carried out (unknown component, no pod to kill, no load)."""


@dataclass
class Target:
    """The ScaleStage under test and the API clients."""

    core: Any
    apps: Any
    batch: Any
    custom: Any
    namespace: str
    name: str

    def scalestage(self) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                        self.name)

    def components(self) -> dict[str, dict]:
        """Component name -> its status row (kind, desired, ready), for the stage reached."""
        status = self.scalestage().get("status") or {}
        return {c["name"]: c for c in status.get("components") or []}

    def selector(self, component: str, kind: str) -> str:
        """The pod selector of a component's workload (`<name>-<component>`), read once a kill:
        the watch loop then only lists pods."""
        read = (self.apps.read_namespaced_stateful_set if kind == "StatefulSet"
                else self.apps.read_namespaced_deployment)
        workload = read(f"{self.name}-{component}", self.namespace)
        return selector_string(workload.spec.selector.match_labels)

    def pods(self, selector: str) -> list:
        return self.core.list_namespaced_pod(self.namespace, label_selector=selector).items


def ready(pod) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


class Load:
    """The load Job's pod: its ticks, and stopping it if this run started it."""

    def __init__(self, target: Target, say: Say):
        from .specs import load

        self.target = target
        job = loadjob.read_job(target.batch, target.namespace, load.job_name(target.name))
        self.started = not loadjob.still_loading(target.core, job)
        if self.started:
            options = load.LoadOptions(duration=0, **DEFAULT_LOAD)
            job = loadjob.start(target.batch, target.scalestage(), options, replacing=job)
            say(f"started a load Job {job.metadata.name}: {DEFAULT_LOAD['users']} users, "
                f"{DEFAULT_LOAD['rate']:g} req/s through the front door")
        else:
            say(f"measuring with the load Job that runs: {job.metadata.name}")
        self.job = job
        self.pod = self._pod()

    def _pod(self) -> str:
        deadline = time.monotonic() + BASELINE_TIMEOUT
        while time.monotonic() < deadline:
            pod = loadjob.load_pod(self.target.core, self.job)
            if pod is not None and pod.status.phase == "Running":
                return pod.metadata.name
            time.sleep(POLL_SECONDS)
        raise ChaosError(f"the load Job {self.job.metadata.name} has no running pod")

    def ticks(self) -> list[dict]:
        return loadjob.ticks(self.target.core, self.target.namespace, self.pod)

    def baseline(self) -> None:
        """Wait for BASELINE_SECONDS of ticks with traffic."""
        deadline = time.monotonic() + BASELINE_TIMEOUT
        while time.monotonic() < deadline:
            busy = [t for t in self.ticks() if t.get("requests")]
            if len(busy) >= chaos.BASELINE_SECONDS:
                return
            time.sleep(POLL_SECONDS)
        raise ChaosError("the load sent no requests: is the front door answering?")

    def finish(self) -> dict | None:
        """Stop the load if this run started it; its summary line (None if it was not ours)."""
        if not self.started:
            return None
        loadjob.stop_load(self.target.namespace, self.pod)
        deadline = time.monotonic() + WINDOW_SECONDS
        while time.monotonic() < deadline:
            summary = loadjob.summary(self.target.core, self.target.namespace, self.pod)
            if summary is not None:
                return summary
            time.sleep(2)
        raise ChaosError(f"the load pod {self.pod} did not report its verdict")


def victim(pods: list, component: str, pod: str | None) -> str:
    """The pod to kill: the one named, or the first ready pod of the component by name."""
    if pod is not None:
        if pod not in {p.metadata.name for p in pods}:
            raise ChaosError(f"no pod {pod} in component {component}")
        return pod
    pods = [p for p in pods if ready(p)]
    if not pods:
        raise ChaosError(f"component {component} has no ready pod to kill")
    return sorted(p.metadata.name for p in pods)[0]


def kill(target: Target, load: Load, component: str, *, force: bool = False,
         pod: str | None = None, hold: bool = False, say: Say = print) -> chaos.KillReport:
    """Kill one pod of `component` under the load; watch until users see no failure for
    chaos.QUIET_SECONDS and the component has its pods back (or WINDOW_SECONDS pass).
    `hold`: keep its replacement from starting for chaos.HOLD_SECONDS (no new pod in the
    namespace meanwhile), to measure users without the pod."""
    components = target.components()
    if component not in components:
        raise ChaosError(f"no component {component!r} at this stage; components: "
                         f"{', '.join(components) or 'none (is the ScaleStage Ready?)'}")
    load.baseline()
    selector = target.selector(component, components[component].get("kind", ""))
    before = target.pods(selector)
    name = victim(before, component, pod)
    old = {p.metadata.name: p.metadata.uid for p in before}  # uids before
    controller = chaos.replacing_controller(
        [ref.to_dict() for p in before if p.metadata.name == name
         for ref in p.metadata.owner_references or []])
    seen = load.ticks()
    killed_at = seen[-1]["t"] if seen else 0.0
    with holding(target, enabled=hold) as release:
        target.core.delete_namespaced_pod(name, target.namespace,
                                          grace_period_seconds=0 if force else None)
        say(f"{'force-killed' if force else 'deleted'} pod {name} ({component}) at load "
            f"t={killed_at:g} s" + (f"; its replacement held back {chaos.HOLD_SECONDS} s"
                                    if hold else ""))
        started = time.monotonic()
        deadline = started + WINDOW_SECONDS
        back_at = released_at = None
        while True:
            time.sleep(POLL_SECONDS)
            ticks = load.ticks()
            last = ticks[-1]["t"] if ticks else killed_at
            if hold and released_at is None and time.monotonic() - started >= chaos.HOLD_SECONDS:
                release()
                wake(target, controller, say)
                released_at = last
            if back_at is None and replaced_and_ready(target.pods(selector),
                                                      components[component]["desired"], old,
                                                      name):
                back_at = last
            if (back_at is not None and (released_at is not None or not hold)
                    and chaos.recovered(ticks, max(killed_at, back_at))):
                break
            if time.monotonic() > deadline:
                break
    return chaos.measure(ticks, component=component, pod=name, forced=force,
                         killed_at=killed_at, back_at=back_at, released_at=released_at)


@contextlib.contextmanager
def holding(target: Target, *, enabled: bool):
    """A zero-pod ResourceQuota in the namespace while the block runs, or until the `release`
    it yields is called; none left behind, even by a run that failed (or an earlier one)."""
    def release():
        try:
            target.core.delete_namespaced_resource_quota(chaos.HOLD_QUOTA, target.namespace)
        except ApiException as error:
            if error.status != 404:  # already gone is fine; anything else must be seen
                raise

    if not enabled:
        yield lambda: None
        return
    release()  # a hold an interrupted run left
    target.core.create_namespaced_resource_quota(target.namespace,
                                                 chaos.hold_quota(target.namespace))
    try:
        wait_until_held(target)
        yield release
    finally:
        release()


def wake(target: Target, controller: tuple[str, str] | None, say: Say) -> None:
    """The hold is over: the killed pod's controller tries again now (chaos.wake_patch)."""
    if controller is None:
        return
    kind, name = controller
    patch = (target.apps.patch_namespaced_replica_set if kind == "ReplicaSet"
             else target.apps.patch_namespaced_stateful_set)
    try:
        patch(name, target.namespace, chaos.wake_patch(now()))
    except ApiException as error:  # e.g. no patch right: the controller's own retry comes later
        say(f"  could not wake {kind} {name} after the hold ({error.status} {error.reason}); "
            "its replacement comes when the controller tries again")


def wait_until_held(target: Target) -> None:
    """Until a new pod is refused by the hold quota (a dry run: nothing is created)."""
    deadline = time.monotonic() + HOLD_EFFECTIVE_TIMEOUT
    while True:
        try:
            target.core.create_namespaced_pod(target.namespace,
                                              chaos.hold_probe(target.namespace), dry_run="All")
        except ApiException as error:
            if error.status == 403 and chaos.HOLD_QUOTA in (error.body or ""):
                return
            raise
        if time.monotonic() > deadline:
            raise ChaosError(f"the ResourceQuota {chaos.HOLD_QUOTA} did not take effect within "
                             f"{HOLD_EFFECTIVE_TIMEOUT} s: new pods are still admitted")
        time.sleep(0.2)


def replaced_and_ready(pods: list, desired: int, old: dict[str, str], killed: str) -> bool:
    """`desired` ready pods, none of them the killed one (a StatefulSet's replacement has its
    name but a new uid)."""
    back = [p for p in pods
            if ready(p) and not (p.metadata.name == killed and p.metadata.uid == old[killed])]
    return len(back) >= desired


def spof_check(target: Target, load: Load, say: Say = print) -> dict[str, Any]:
    """Kill one pod of each component of the stage in turn, outright (a crash: no graceful stop
    to hide behind), its replacement held back for chaos.HOLD_SECONDS, and compare with
    status.spofs; the result goes to status.spofCheck and an Event."""
    found = target.scalestage()
    status = found.get("status") or {}
    if status.get("phase") != "Ready":
        raise ChaosError(f"{target.name} is {status.get('phase', 'not reconciled yet')}: "
                         "a spof-check measures a Ready stage")
    reports = []
    for component in target.components():
        report = kill(target, load, component, force=True, hold=True, say=say)
        say(f"  {component}: outage {report.outage_seconds:g} s, sessions lost "
            f"{report.sessions_lost}, {'SPOF' if report.spof else 'no SPOF'} measured")
        reports.append(report)
    check = chaos.spof_check_status(reports, status.get("spofs") or [], status.get("stage"),
                                    now())
    target.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, target.namespace, PLURAL, target.name, {"status": {"spofCheck": check}},
        _content_type="application/merge-patch+json")
    event(target, found, "SpofCheck" if check["agrees"] else "SpofCheckContradicts",
          chaos.summary_message(check), warning=not check["agrees"])
    return check


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(target: Target, owner: dict, reason: str, message: str, *, warning: bool) -> None:
    meta = owner["metadata"]
    target.core.create_namespaced_event(target.namespace, {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": target.namespace},
        "involvedObject": {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                           "name": meta["name"], "namespace": target.namespace,
                           "uid": meta["uid"]},
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:1000],
        "source": {"component": "scalestage-cli"},
        "firstTimestamp": now(), "lastTimestamp": now(), "count": 1,
    })
