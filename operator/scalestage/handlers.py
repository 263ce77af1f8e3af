"""kopf handlers, thin: every trigger runs the same level-triggered reconcile.

Run with `kopf run -m scalestage.handlers --standalone --namespace NS` (or --all-namespaces).
Environment: SCALESTAGE_RESYNC_SECONDS (drift check period, default 10),
SCALESTAGE_IMAGE_{APP,POSTGRES,REDIS,EDGE} (default images when a spec names none).
The API client and the per-object locks belong to one `Operator`, made at startup and kept in
kopf's memo (every handler gets it as `memo.operator`).
"""

from __future__ import annotations

import logging
import os

import kopf
from kubernetes.client.exceptions import ApiException

from . import apply
from .names import GROUP, MANAGED_BY, MANAGED_BY_LABEL, PLURAL, VERSION
from .reconcile import Operator

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
    # A ScaleStage deleted while its timer runs a reconcile (a thread kopf cannot cancel): look
    # again in a second, not the default minute, before letting it (and its namespace) go.
    settings.background.cancellation_polling = 1
    memo.operator = Operator.from_environment()


def run(memo: kopf.Memo, namespace: str, name: str, logger: logging.Logger, trigger: str) -> None:
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
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    logger.info("reconciled (%s): %s, %d write call(s)", trigger, outcome.action, outcome.writes)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def on_change(meta, memo, logger, reason, **_) -> None:
    run(memo, meta["namespace"], meta["name"], logger, str(reason))


@kopf.timer(*RESOURCE, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def on_timer(meta, memo, logger, **_) -> None:
    """The drift check: a child deleted or edited by hand is restored within one period."""
    run(memo, meta["namespace"], meta["name"], logger, "timer")


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
