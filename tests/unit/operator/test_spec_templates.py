"""Config file templates (scalestage/templates/): rendered for every stage that uses them, checked
by the tools that run them (bash -n, shellcheck, nginx -t; a check skips when its tool is not on
PATH), and shipped in the wheel the operator image installs."""

import shutil
import subprocess
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from scalestage import specs, stages
from scalestage.names import Names
from scalestage.specs import common, edge, postgres, secrets

OPERATOR = Path(__file__).resolve().parents[3] / "operator"
TEMPLATES = {"postgres-primary.sh", "postgres-replica.sh", "nginx.conf"}
# Variants that together build every script: replicas or not, one cluster or shards.
VARIANTS = [{"stage": n} for n in range(1, 6)] + [
    {"stage": 4, "database": {"readReplicas": 0}},
    {"stage": 5, "database": {"shards": 3, "readReplicas": 0}},
]


def scripts(manifests):
    """{(workload, container): script} of every container started as `sh -c SCRIPT`."""
    out = {}
    for m in manifests:
        if m["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = m["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            if c.get("command", [])[:2] == ["sh", "-c"]:
                out[m["metadata"]["name"], c["name"]] = c["command"][2]
    return out


@pytest.fixture(scope="module")
def all_scripts():
    credentials = {key: "x" for key in secrets.KEYS}
    out = {}
    for spec in VARIANTS:
        built = specs.build_all(stages.resolve(spec), Names("chirp"), credentials)
        out.update({(str(spec), *key): s for key, s in scripts(built).items()})
    return out


def test_the_templates_are_package_data():
    shipped = {p.name for p in (files("scalestage") / "templates").iterdir()}
    assert shipped == TEMPLATES
    package_data = tomllib.loads((OPERATOR / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["scalestage"]
    assert "templates/*" in package_data  # the image installs a wheel: no file, no template


def test_render_refuses_a_missing_or_an_unknown_value():
    with pytest.raises(ValueError):
        common.render("postgres-replica.sh", SERVER_FLAGS="-c x=1")
    with pytest.raises(ValueError):
        common.render("postgres-primary.sh", SERVER_FLAGS="-c x=1", PORT=1)


@pytest.mark.parametrize("primary", [True, False])
def test_rendered_scripts_have_no_placeholders_left(primary):
    script = postgres.start_script(primary)
    assert not common.PLACEHOLDER.search(script)
    assert script.endswith(f'exec postgres -D "$PGDATA" {postgres.SERVER_FLAGS}\n')


def test_every_stage_starts_postgres_with_one_of_the_two_scripts(all_scripts):
    primary, replica = postgres.start_script(True), postgres.start_script(False)
    assert set(all_scripts.values()) == {primary, replica}
    # stage 1: the monolith's sidecar; 2-4: db-primary; 5: each shard's primary
    assert all_scripts[str({"stage": 1}), "chirp-monolith", "postgres"] == primary
    assert all_scripts[str({"stage": 3}), "chirp-db-replica", "postgres"] == replica
    assert all_scripts[str({"stage": 5}), "chirp-db-shard-1-primary", "postgres"] == primary


@pytest.mark.parametrize("primary", [True, False], ids=["primary", "replica"])
def test_scripts_parse_with_bash(tmp_path, primary):
    path = tmp_path / "start.sh"
    path.write_text(postgres.start_script(primary))
    subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.mark.parametrize("primary", [True, False], ids=["primary", "replica"])
def test_scripts_pass_shellcheck(tmp_path, primary):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not on PATH")
    path = tmp_path / "start.sh"
    path.write_text(postgres.start_script(primary))
    # `sh -c`: the images' /bin/sh is dash, so check as POSIX sh
    result = subprocess.run(["shellcheck", "--shell=sh", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_edge_configmap_is_the_rendered_template(plan, names):
    config_map = edge.build(plan(5), names)[0]
    assert config_map["data"][edge.CONFIG_KEY] == edge.nginx_conf("chirp-web")
    assert not common.PLACEHOLDER.search(config_map["data"][edge.CONFIG_KEY])


def test_nginx_accepts_the_config(tmp_path):
    nginx = shutil.which("nginx")
    if not nginx:
        pytest.skip("nginx is not on PATH")
    # nginx -t resolves upstream hosts and creates the temp paths: a resolvable host, and the
    # pod's /tmp (an emptyDir) moved under tmp_path.
    conf = edge.nginx_conf("127.0.0.1").replace(" /tmp/", f" {tmp_path}/")
    assert "/tmp/" not in conf.replace(str(tmp_path), "")
    path = tmp_path / edge.CONFIG_KEY
    path.write_text(conf)
    command = [nginx, "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
