"""kopf handlers, thin: every trigger runs the same level-triggered reconcile.

Run with `kopf run -m scalestage.handlers --standalone --namespace NS` (or --all-namespaces).
Environment: SCALESTAGE_RESYNC_SECONDS (drift check period, default 10),
SCALESTAGE_IMAGE_{APP,POSTGRES,REDIS,EDGE} (default images when a spec names none).
The API client and the per-object locks belong to one `Operator`, made at startup and kept in
kopf's memo (every handler gets it as `memo.operator`).

No finalizer on a ScaleStage: its children carry owner references, so the garbage collector
deletes them with it, and a ScaleStage deleted while no operator runs (uninstalled first, crashed)
goes at once. kopf puts a finalizer on every object a per-object timer or daemon serves (to stop
that task before the object goes), so the drift check is one operator-wide loop over kopf's index
of ScaleStages instead (`drift_check`); kopf then also removes the finalizer older versions left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping

import kopf
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from . import apply, reconcile
from .names import GROUP, MANAGED_BY, MANAGED_BY_LABEL, PLURAL, VERSION
from .reconcile import Operator

log = logging.getLogger(__name__)
RESYNC_SECONDS = float(os.environ.get("SCALESTAGE_RESYNC_SECONDS", "10"))
RESOURCE = (GROUP, VERSION, PLURAL)
ANNOTATIONS_PREFIX = "kopf.scalestage.dev"


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    # Progress and diff-base in our own annotations; Events only where we post them (kopf.event),
    # never one per log line (each would be a write on every periodic reconcile); one replica,
    # so no peering objects to heartbeat.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATIONS_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATIONS_PREFIX)
    settings.posting.loggers = False
    settings.posting.reporting_component = MANAGED_BY
    settings.posting.reporting_instance = os.environ.get("HOSTNAME", MANAGED_BY)
    settings.peering.standalone = True
    # No cluster-wide scans of CRDs and namespaces: a namespaced Role is then enough. The chart
    # installs the CRD before the operator starts, which is all the scan would have waited for.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    memo.operator = Operator.from_environment()


def run(memo: kopf.Memo, namespace: str, name: str, logger: logging.Logger, trigger: str,
        post=kopf.event) -> None:
    try:
        done = memo.operator.reconcile(namespace, name)
    except ApiException as error:
        if apply.namespace_terminating(error):  # deleted with its namespace: nothing to restore
            logger.debug("namespace is being deleted; reconcile skipped")
            return
        raise kopf.TemporaryError(f"reconcile failed: {error}", delay=5) from error
    except Exception as error:  # retried by kopf with backoff
        raise kopf.TemporaryError(f"reconcile failed: {error}", delay=5) from error
    if done is None:
        return
    body, outcome = done
    for event in outcome.events:
        post(body, type=event.type, reason=event.reason, message=event.message)
    logger.info("reconciled (%s): %s, %d write call(s)", trigger, outcome.action, outcome.writes)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def on_change(meta, memo, logger, reason, **_) -> None:
    run(memo, meta["namespace"], meta["name"], logger, str(reason))


@kopf.index(*RESOURCE)
def scalestages(namespace, name, **_) -> dict:
    """Every ScaleStage this operator serves (kopf keeps it current, deletions included)."""
    return {None: (namespace, name)}


@kopf.on.startup()
async def start_drift_check(memo: kopf.Memo, scalestages: kopf.Index, **_) -> None:
    memo.drift_check = asyncio.create_task(drift_check(memo, scalestages))


@kopf.on.cleanup()
async def stop_drift_check(memo: kopf.Memo, **_) -> None:
    task = memo.get("drift_check")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def drift_check(memo: kopf.Memo, index: kopf.Index) -> None:
    """Every period, one reconcile of each ScaleStage (trigger "timer"): a child deleted or edited
    by hand is restored within one period, and a move's progress is read. A failed pass is logged
    and tried again at the next period; nothing ends the loop but the operator's exit."""
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        poster = EventPoster(memo.operator.resources[apply.SCALESTAGE].client.client)
        for namespace, name in sorted(set(index.get(None, ()))):
            logger = ObjectLogger(log, {"object": f"{namespace}/{name}"})
            try:
                await asyncio.to_thread(run, memo, namespace, name, logger, "timer", poster.post)
            except Exception as error:  # the API server away, an Event refused, ...
                logger.warning("drift check failed: %s; next try in %g s", error, RESYNC_SECONDS)


class ObjectLogger(logging.LoggerAdapter):
    """Log lines prefixed with `[namespace/name]`, as kopf's own lines about an object are."""

    def process(self, msg, kwargs):
        return f"[{self.extra['object']}] {msg}", kwargs


class EventPoster:
    """Posts Events on a ScaleStage outside kopf's handlers (kopf.event only works inside them),
    shaped like kopf's own (core/v1, the operator as source and reporting component)."""

    def __init__(self, api):
        self.core = CoreV1Api(api)

    def post(self, body: Mapping, *, type: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        now = reconcile.now()
        self.core.create_namespaced_event(meta["namespace"], {
            "metadata": {"generateName": "kopf-event-"},
            "involvedObject": {"apiVersion": body["apiVersion"], "kind": body["kind"],
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"]},
            "type": type, "reason": reason, "message": message[:1024],
            "source": {"component": MANAGED_BY},
            "reportingComponent": MANAGED_BY,
            "reportingInstance": os.environ.get("HOSTNAME", MANAGED_BY),
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })


# A workload's status moves (pods ready, a rollout done, a move Job finished, someone deleting
# it): reconcile its owner at once instead of at the next timer tick, so `phase` follows the pods
# within a second.
@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY_LABEL: MANAGED_BY})
@kopf.on.event("apps", "v1", "statefulsets", labels={MANAGED_BY_LABEL: MANAGED_BY})
@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY_LABEL: MANAGED_BY})
def on_workload_event(body, memo, logger, **_) -> None:
    owner = apply.owner_of(body)
    if owner is not None:
        run(memo, body["metadata"]["namespace"], owner, logger, "workload")
