"""The edge cache (stage 5): nginx in front of the web Service, caching static assets and the
public pages of visitors without a cookie. It listens on 8080 as uid 101 (docs/contracts.md).

Every proxied request opens a new connection to the web Service, so kube-proxy spreads the
requests over every web pod (no upstream keepalive: templates/nginx.conf says why)."""

from __future__ import annotations

import hashlib

from ..names import Names
from ..stages import Plan
from . import app, web
from .common import Manifest, container, metadata, render, service, workload

COMPONENT = "edge"
EDGE_UID = 101
PORT = 8080
CONFIG_KEY = "nginx.conf"
CONFIG_DIR = "/etc/scalestage"


def nginx_conf(upstream: str) -> str:
    """templates/nginx.conf, proxying to the web Service `upstream`."""
    return render(CONFIG_KEY, UPSTREAM=upstream, UPSTREAM_PORT=web.PORT, PORT=PORT)


def build(plan: Plan, names: Names) -> list[Manifest]:
    if not plan.stage.edge:
        return []
    config_name = names.of("edge-config")
    conf = nginx_conf(names.of(web.COMPONENT))
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(names, config_name, COMPONENT),
        "data": {CONFIG_KEY: conf},
    }
    nginx = container(
        "nginx", plan.images["edge"], plan.resources["edge"],
        command=["nginx"],
        args=["-e", "stderr", "-c", f"{CONFIG_DIR}/{CONFIG_KEY}", "-g", "daemon off;"],
        ports={"http": PORT},
        readinessProbe={
            "httpGet": {"path": "/edge-healthz", "port": PORT, "scheme": "HTTP"},
            "periodSeconds": 2,
        },
        # like the web pods: out of the Service's endpoints first, then nginx's graceful stop
        # (SIGQUIT, the image's STOPSIGNAL), so a pruned or rolled edge drops no request
        lifecycle={"preStop": {"sleep": {"seconds": app.DRAIN_SECONDS}}},
        mounts={"config": CONFIG_DIR, "tmp": "/tmp"},
        read_only=("config",),
    )
    pod = {
        "containers": [nginx],
        "volumes": [
            {"name": "config", "configMap": {"name": config_name}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    return [
        config_map,
        # A new config rolls the pods (nginx reads it only at start).
        workload("Deployment", names, COMPONENT, plan.edge_replicas, pod, run_as=EDGE_UID,
                 pod_annotations={"scalestage.dev/config-hash": sha(conf)}),
        service(names, names.of(COMPONENT), COMPONENT, names.selector(COMPONENT), 80, PORT),
    ]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
