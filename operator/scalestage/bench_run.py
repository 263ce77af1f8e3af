"""`scalestage bench`: walk the ScaleStage through the stages asked for and run the same load Job
at each (closed loop: `--concurrency` requests in flight, no pacing, so each stage shows what it
can serve), reading every app pod's /metrics before and after through the API server's pod proxy.
capacity.py turns the figures into the table and the chart; this module only talks to the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from . import capacity, loadjob
from .names import COMPONENT, GROUP, INSTANCE, PLURAL, VERSION
from .stages import STAGES

STAGE_TIMEOUT = 900  # a data move with a stage change on 2 cores
SUMMARY_TIMEOUT = 600
APP_COMPONENTS = ("monolith", "web")  # the pods that serve requests and count their queries

Say = Callable[[str], None]


class BenchError(Exception):
    pass


def reach(custom, namespace: str, name: str, stage: int, say: Say) -> None:
    """Ask for the stage and wait until it is reached, Ready and no move runs."""
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                          {"spec": {"stage": stage}})
    started = time.monotonic()
    while time.monotonic() - started < STAGE_TIMEOUT:
        found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        status = found.get("status") or {}
        if (status.get("stage") == stage and status.get("phase") == "Ready"
                and status.get("observedGeneration") == found["metadata"]["generation"]
                and not status.get("migration") and not status.get("path")):
            say(f"stage {stage} Ready ({time.monotonic() - started:.0f} s)")
            return
        if status.get("phase") == "Failed":
            raise BenchError(f"stage {stage}: the walk failed: {status.get('progress')}")
        time.sleep(2)
    raise BenchError(f"stage {stage} not Ready within {STAGE_TIMEOUT} s")


def app_metrics(core, namespace: str, name: str) -> dict[tuple, float]:
    """The query and cache counters of every running app pod, keyed (pod, counter...)."""
    from .specs.app import PORT

    out: dict[tuple, float] = {}
    for component in APP_COMPONENTS:
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"{INSTANCE}={name},{COMPONENT}={component}").items
        for pod in pods:
            if pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
                continue
            text = core.connect_get_namespaced_pod_proxy_with_path(
                f"{pod.metadata.name}:{PORT}", namespace, "metrics")
            for key, value in capacity.counters(text).items():
                out[(pod.metadata.name, *key)] = value
    return out


def by_counter(grown: dict[tuple, float]) -> dict[tuple, float]:
    """Per-pod keys summed over pods."""
    out: dict[tuple, float] = {}
    for key, value in grown.items():
        out[key[1:]] = out.get(key[1:], 0.0) + value
    return out


def run_load(core, batch, scalestage: dict, options, say: Say) -> dict:
    """One load Job to its summary line."""
    from .specs import load

    namespace = scalestage["metadata"]["namespace"]
    existing = loadjob.read_job(batch, namespace, load.job_name(scalestage["metadata"]["name"]))
    if existing is not None and loadjob.job_state(existing) == "Running":
        raise BenchError("a load Job runs already: stop it (scalestage load --stop) first")
    job = loadjob.start(batch, scalestage, options, replacing=existing)
    deadline = time.monotonic() + SUMMARY_TIMEOUT + options.duration
    while time.monotonic() < deadline:
        pod = loadjob.load_pod(core, job)
        if pod is not None and pod.status.phase in ("Running", "Succeeded", "Failed"):
            summary = loadjob.summary(core, namespace, pod.metadata.name)
            if summary is not None:
                return summary
        time.sleep(2)
    raise BenchError(f"the load Job {job.metadata.name} gave no summary")


def bench(core, batch, custom, namespace: str, name: str, stages: list[int], options,
          out_dir: Path, say: Say) -> tuple[list[capacity.StageFigures], Path, Path]:
    rows = []
    for stage in stages:
        reach(custom, namespace, name, stage, say)
        scalestage = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        before = app_metrics(core, namespace, name)
        summary = run_load(core, batch, scalestage, options, say)
        after = app_metrics(core, namespace, name)
        grown = by_counter(capacity.delta(before, after))
        row = capacity.figures(stage, STAGES[stage].name, summary, grown)
        say(f"stage {stage}: {row.rps:.1f} req/s, p50 {row.p50_ms} ms, p95 {row.p95_ms} ms, "
            f"errors {row.errors}; lost {summary.get('lost')}, duplicated "
            f"{summary.get('duplicated')}")
        if not summary.get("ok"):
            raise BenchError(f"stage {stage}: the load lost or doubled writes: {summary}")
        rows.append(row)
    load = (f"{options.users} users, {options.concurrency} requests in flight (closed loop), "
            f"{options.duration:g} s per stage, from a Job inside the cluster through the front "
            "door")
    table = out_dir / "capacity.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.write_text(capacity.markdown(rows, load))
    chart = capacity.chart(rows, out_dir / "capacity.png",
                           f"{name}: the same load at each stage ({load.split(',')[0]})")
    return rows, table, chart
