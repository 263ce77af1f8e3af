"""The load Job's edge (specs/load.py builds it): find it and its pod, follow or read its JSON
lines (docs/load.md), stop it, start a new one. Used by `scalestage load` and `scalestage chaos`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from rich.console import Console

POD_START_TIMEOUT = 300
JOB_END_TIMEOUT = 60
POD_STUCK = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
             "CreateContainerConfigError", "CreateContainerError"}


def job_state(job) -> str:
    """Running | Complete | Failed."""
    for condition in (job.status and job.status.conditions) or []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return condition.type
    return "Running"


def load_pod(core, job):
    """The pod of this Job (by its uid: not one of a deleted Job of the same name)."""
    from .specs.load import JOB_UID_LABEL

    pods = core.list_namespaced_pod(job.metadata.namespace,
                                    label_selector=f"{JOB_UID_LABEL}={job.metadata.uid}").items
    return max(pods, key=lambda pod: pod.metadata.creation_timestamp) if pods else None


def wait_for_pod(core, job, console: Console) -> str | None:
    """The name of the Job's pod once its container has started; None if it cannot start."""
    deadline = time.monotonic() + POD_START_TIMEOUT
    with console.status(f"waiting for the pod of Job {job.metadata.name}…"):
        while time.monotonic() < deadline:
            pod = load_pod(core, job)
            if pod is not None:
                if pod.status.phase in ("Running", "Succeeded", "Failed"):
                    return pod.metadata.name
                for container in pod.status.container_statuses or []:
                    waiting = container.state and container.state.waiting
                    if waiting and waiting.reason in POD_STUCK:
                        console.print(f"[red]pod {pod.metadata.name} cannot start:"
                                      f" {waiting.reason}[/] {waiting.message or ''}")
                        return None
            time.sleep(1)
    console.print(f"[red]no pod of Job {job.metadata.name} started within"
                  f" {POD_START_TIMEOUT} s[/]")
    return None


def pod_log_lines(core, namespace: str, pod: str) -> Iterable[str]:
    from kubernetes.watch.watch import iter_resp_lines

    from .specs.load import CONTAINER

    response = core.read_namespaced_pod_log(pod, namespace, container=CONTAINER, follow=True,
                                            _preload_content=False)
    try:
        yield from iter_resp_lines(response)
    finally:
        response.release_conn()


def wait_for_job_end(batch, namespace: str, job: str) -> str:
    deadline = time.monotonic() + JOB_END_TIMEOUT
    while True:
        state = job_state(batch.read_namespaced_job(job, namespace))
        if state != "Running" or time.monotonic() >= deadline:
            return state
        time.sleep(1)


def stop_load(namespace: str, pod: str) -> None:
    """Create the stop file in the load pod (an exec, like `kubectl exec … touch`)."""
    from kubernetes import client
    from kubernetes.stream import stream

    from .specs.load import CONTAINER, STOP_FILE

    core = client.CoreV1Api(client.ApiClient())  # stream() swaps the transport of its client
    stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=CONTAINER,
           command=["touch", STOP_FILE], stderr=True, stdin=False, stdout=True, tty=False)


def read_job(batch, namespace: str, name: str):
    from kubernetes.client.exceptions import ApiException

    try:
        return batch.read_namespaced_job(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        return None


def start(batch, scalestage: dict, options, image: str | None = None, *, replacing=None):
    """Create the load Job for this ScaleStage (`options`: specs.load.LoadOptions); a finished
    Job of the same name (`replacing`) goes first, pods included."""
    from .specs import load

    namespace = scalestage["metadata"]["namespace"]
    manifest = load.build(scalestage, image or load.app_image(scalestage), options)
    if replacing is not None:
        name = replacing.metadata.name
        batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
        deadline = time.monotonic() + JOB_END_TIMEOUT
        while read_job(batch, namespace, name) and time.monotonic() < deadline:
            time.sleep(0.5)
    return batch.create_namespaced_job(namespace, manifest)


def lines(core, namespace: str, pod: str, tail: int = 400) -> list[dict]:
    """The pod's last JSON lines (ticks and events), oldest first; other lines skipped."""
    from .specs.load import CONTAINER

    text = core.read_namespaced_pod_log(pod, namespace, container=CONTAINER, tail_lines=tail)
    out = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def summary(core, namespace: str, pod: str) -> dict | None:
    """The load's summary line (its verdict), once it has printed it."""
    found = [line for line in lines(core, namespace, pod, tail=50)
             if line.get("event") == "summary"]
    return found[-1] if found else None


def still_loading(core, job) -> bool:
    """Is this load Job still sending requests? Not once its pod has printed the summary: a
    stopped load verifies its writes (up to minutes) before the Job completes."""
    if job is None or job_state(job) != "Running":
        return False
    pod = load_pod(core, job)
    if pod is None or pod.status.phase != "Running":
        return pod is None  # still starting: it will load
    return summary(core, job.metadata.namespace, pod.metadata.name) is None


def ticks(core, namespace: str, pod: str, tail: int = 400) -> list[dict]:
    return [line for line in lines(core, namespace, pod, tail) if line.get("event") == "tick"]
