"""kopf handlers, thin: every trigger runs the same level-triggered reconcile.

Run with `kopf run -m scalestage.handlers --standalone --namespace NS` (or --all-namespaces).
Environment: SCALESTAGE_RESYNC_SECONDS (drift check period, default 10),
SCALESTAGE_IMAGE_{APP,POSTGRES,REDIS,EDGE} (default images when a spec names none).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from . import apply
from .names import GROUP, MANAGED_BY, MANAGED_BY_LABEL
from .reconcile import reconcile

RESYNC_SECONDS = float(os.environ.get("SCALESTAGE_RESYNC_SECONDS", "10"))
RESOURCE = (GROUP, apply.VERSION, apply.PLURAL)

_api: client.ApiClient | None = None
# A timer and a change handler may fire together for one object: one reconcile at a time each.
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def default_images() -> dict[str, str]:
    return {name: os.environ[f"SCALESTAGE_IMAGE_{name.upper()}"]
            for name in ("app", "postgres", "redis", "edge")
            if os.environ.get(f"SCALESTAGE_IMAGE_{name.upper()}")}


def api() -> client.ApiClient:
    global _api
    if _api is None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        _api = client.ApiClient()
        _api.user_agent = apply.FIELD_MANAGER
    return _api


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    # Progress and diff-base in our own annotations; no per-handler events (each would be a write
    # on every periodic reconcile); one replica, so no peering objects to heartbeat.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.scalestage.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kopf.scalestage.dev")
    settings.posting.enabled = False
    settings.peering.standalone = True
    # No cluster-wide scans of CRDs and namespaces: a namespaced Role is then enough. The chart
    # installs the CRD before the operator starts, which is all the scan would have waited for.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300


def run(body, logger: logging.Logger, trigger: str) -> None:
    meta = body["metadata"]
    with _locks[f"{meta['namespace']}/{meta['name']}"]:
        cluster = apply.Cluster(api())
        # Fresh from the API server (a read): a timer and a change handler queued behind each
        # other must not act on the status the other one has just replaced.
        current = cluster.get(apply.SCALESTAGE, meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("deletionTimestamp"):
            return
        try:
            outcome = reconcile(cluster, current, default_images())
        except ApiException as error:
            if apply.namespace_terminating(error):  # deleted with its namespace: nothing to restore
                logger.debug("namespace is being deleted; reconcile skipped")
                return
            raise kopf.TemporaryError(f"reconcile failed: {error}", delay=5) from error
        except Exception as error:  # retried by kopf with backoff
            raise kopf.TemporaryError(f"reconcile failed: {error}", delay=5) from error
        logger.info("reconciled (%s): %s, %d write call(s)", trigger, outcome.action, cluster.writes)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def on_change(body, logger, reason, **_) -> None:
    run(body, logger, str(reason))


@kopf.timer(*RESOURCE, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def on_timer(body, logger, **_) -> None:
    """The drift check: a child deleted or edited by hand is restored within one period."""
    run(body, logger, "timer")


# A workload's status moves (pods ready, a rollout done, someone deleting it): reconcile its owner
# at once instead of at the next timer tick, so `phase` follows the pods within a second.
@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY_LABEL: MANAGED_BY})
@kopf.on.event("apps", "v1", "statefulsets", labels={MANAGED_BY_LABEL: MANAGED_BY})
def on_workload_event(body, logger, **_) -> None:
    owner = apply.owner_of(body)
    if owner is not None:
        run({"metadata": {"namespace": body["metadata"]["namespace"], "name": owner}}, logger,
            "workload")
