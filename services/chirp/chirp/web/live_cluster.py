"""What the live architecture page reads from the Kubernetes API: this instance's pods, its
ScaleStage and the architecture ConfigMap (the mounted copy trails the API by up to a minute).

The pod's ServiceAccount may do exactly that (the operator's specs/access.py Role); the client is
the kubernetes package, configured in-cluster. Outside a cluster, or without the rights, read()
says why and the page shows what the pod knows. Reads are shared for `ttl` seconds: every open
page polls once a second, and N pages must not make N times the calls.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# The ScaleStage resource and the names the operator gives (docs/contracts.md).
GROUP, VERSION, PLURAL = "scalestage.dev", "v1alpha1", "scalestages"
INSTANCE_LABEL = "app.kubernetes.io/instance"
DOCUMENT_KEY = "architecture.json"
TIMEOUT_SECONDS = 2


def configmap_name(instance: str) -> str:
    return f"{instance}-architecture"


@dataclass(frozen=True)
class Observed:
    """One read of the cluster: None for what could not be read, `problem` says why."""

    pods: list | None = None
    scalestage: dict | None = None
    document: dict | None = None
    problem: str | None = None

    @property
    def live(self) -> bool:
        return self.pods is not None


def no_access_reason(environ, account_dir: str = ACCOUNT_DIR) -> str | None:
    """Why this process cannot read the cluster, or None when it can try."""
    if not environ.get("KUBERNETES_SERVICE_HOST"):
        return "not running in a Kubernetes cluster"
    if not os.path.exists(os.path.join(account_dir, "token")):
        return "this pod has no service account token"
    return None


class ClusterReader:
    """Reads one namespace with the pod's own service account; one instance per app."""

    def __init__(self, namespace: str, api_client, ttl: float = 0.5):
        from kubernetes import client  # loaded only where a cluster is reachable

        self.namespace = namespace
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._ttl = ttl
        self._lock = threading.Lock()
        self._last: tuple[str, float, Observed] | None = None

    @classmethod
    def in_cluster(cls, account_dir: str = ACCOUNT_DIR) -> ClusterReader:
        from kubernetes import client, config

        config.load_incluster_config()
        with open(os.path.join(account_dir, "namespace"), encoding="utf-8") as f:
            namespace = f.read().strip()
        return cls(namespace, client.ApiClient())

    def read(self, instance: str) -> Observed:
        with self._lock:
            now = time.monotonic()
            if self._last and self._last[0] == instance and now - self._last[1] < self._ttl:
                return self._last[2]
            observed = self._read(instance)
            self._last = (instance, time.monotonic(), observed)
            return observed

    def _read(self, instance: str) -> Observed:
        from kubernetes.client.exceptions import ApiException

        try:
            pods = self._json(self._core.list_namespaced_pod(
                self.namespace, label_selector=f"{INSTANCE_LABEL}={instance}",
                _preload_content=False, _request_timeout=TIMEOUT_SECONDS))["items"]
            scalestage = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, instance,
                _request_timeout=TIMEOUT_SECONDS)
            configmap = self._json(self._core.read_namespaced_config_map(
                configmap_name(instance), self.namespace, _preload_content=False,
                _request_timeout=TIMEOUT_SECONDS))
        except ApiException as error:
            log.warning("architecture page: the API refused a read: %s %s", error.status,
                        error.reason)
            return Observed(problem=f"the Kubernetes API answered {error.status} {error.reason}")
        except Exception as error:  # network, timeouts: the page goes on without the cluster
            log.warning("architecture page: cannot read the cluster: %s", error)
            return Observed(problem=f"cannot reach the Kubernetes API ({type(error).__name__})")
        return Observed(pods=pods, scalestage=scalestage,
                        document=parse_document((configmap.get("data") or {}).get(DOCUMENT_KEY)))

    @staticmethod
    def _json(response) -> dict:
        return json.loads(response.data)


def parse_document(text: str | None) -> dict | None:
    """The ConfigMap's document, or None when it is missing or not a JSON object (the mounted
    copy is used then)."""
    try:
        document = json.loads(text or "")
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
