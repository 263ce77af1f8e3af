"""Edge builder: nginx cache in front of web at stage 5, non-root on 8080."""

import pytest

from scalestage.specs import edge


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_absent_before_stage_5(plan, names, stage):
    assert edge.build(plan(stage), names) == []


def test_configmap_deployment_service(plan, names, by_name):
    objs = edge.build(plan(5), names)
    assert [(m["kind"], m["metadata"]["name"]) for m in objs] == [
        ("ConfigMap", "chirp-edge-config"), ("Deployment", "chirp-edge"), ("Service", "chirp-edge")]


def test_nginx_proxies_to_the_web_service_and_caches(names):
    conf = edge.nginx_conf("chirp-web")
    assert "server chirp-web:80;" in conf
    assert "listen 8080" in conf and "proxy_cache_path /tmp/" in conf
    assert "proxy_no_cache $http_cookie" in conf


def test_each_request_is_a_new_connection_to_the_web_service():
    """kube-proxy balances per connection: a kept-alive upstream connection would send all of an
    edge pod's requests to one web pod. No keepalive pool, and nothing that keeps the upstream
    connection open (HTTP/1.1 without `Connection: close`), so every request is balanced anew."""
    conf = edge.nginx_conf("chirp-web")
    directives = [line.split("#", 1)[0].strip() for line in conf.splitlines()]
    code = "\n".join(d for d in directives if d)
    assert "upstream web { server chirp-web:80; }" in code
    assert "keepalive" not in code
    assert "proxy_http_version" not in code and "Connection" not in code
    assert code.count("proxy_pass http://web;") == 2


def test_runs_as_uid_101(plan, names):
    deployment = edge.build(plan(5), names)[1]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 101
    assert pod["containers"][0]["ports"][0]["containerPort"] == 8080


def test_config_change_rolls_the_pods(plan, names):
    a = edge.build(plan(5), names)[1]["spec"]["template"]["metadata"]["annotations"]
    b = edge.build(plan(5), type(names)("other"))[1]["spec"]["template"]["metadata"]["annotations"]
    assert a != b
