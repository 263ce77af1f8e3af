"""The edge cache (stage 5): nginx in front of the web Service, caching static assets and the
public pages of visitors without a cookie. It listens on 8080 as uid 101 (docs/contracts.md)."""

from __future__ import annotations

import hashlib

from ..names import Names
from ..stages import Plan
from . import web
from .common import Manifest, container_security, metadata, pod_security, service

COMPONENT = "edge"
EDGE_UID = 101
PORT = 8080
CONFIG_KEY = "nginx.conf"


def nginx_conf(upstream: str) -> str:
    return f"""worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log /dev/stdout;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  proxy_cache_path /tmp/cache levels=1:2 keys_zone=chirp:10m max_size=100m inactive=10m use_temp_path=off;
  upstream web {{ server {upstream}:{web.PORT}; keepalive 16; }}
  server {{
    listen {PORT};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    add_header X-Cache $upstream_cache_status always;
    location = /edge-healthz {{ return 200 "ok\\n"; }}
    location /static/ {{
      proxy_pass http://web;
      proxy_cache chirp;
      proxy_cache_valid 200 10m;
    }}
    location / {{
      proxy_pass http://web;
      proxy_cache chirp;
      proxy_cache_valid 200 5s;
      # Anyone with a cookie (a session) gets their own page, never a cached one.
      proxy_cache_bypass $http_cookie;
      proxy_no_cache $http_cookie;
    }}
  }}
}}
"""


def build(plan: Plan, names: Names) -> list[Manifest]:
    if not plan.stage.edge:
        return []
    name = names.of(COMPONENT)
    config_name = names.of("edge-config")
    conf = nginx_conf(names.of(web.COMPONENT))
    selector = names.selector(COMPONENT)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(names, config_name, COMPONENT),
        "data": {CONFIG_KEY: conf},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(names, name, COMPONENT),
        "spec": {
            "replicas": plan.edge_replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": names.labels(COMPONENT),
                    # A new config rolls the pods (nginx reads it only at start).
                    "annotations": {"scalestage.dev/config-hash": sha(conf)},
                },
                "spec": {
                    "securityContext": pod_security(EDGE_UID),
                    "containers": [
                        {
                            "name": "nginx",
                            "image": plan.images["edge"],
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["nginx"],
                            "args": ["-e", "stderr", "-c", f"/etc/scalestage/{CONFIG_KEY}",
                                     "-g", "daemon off;"],
                            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/edge-healthz", "port": PORT, "scheme": "HTTP"},
                                "periodSeconds": 5,
                            },
                            "resources": dict(plan.resources["edge"]),
                            "securityContext": container_security(),
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/scalestage", "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_name}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    return [config_map, deployment, service(names, name, COMPONENT, selector, 80, PORT)]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
