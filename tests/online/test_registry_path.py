"""The online path of `make up`, for real, against a local registry (this machine reaches none).

A registry (distribution, built from the Go module proxy by `hack/tools.sh registry`) serves, under
the names the online path asks Docker Hub for, the images we build offline: our node image as
kind's pinned node image (KIND_NODE_IMAGE's tag; the digest our push got stands in for the pinned
one, as SCALESTAGE_KIND_NODE_IMAGE), our Debian base as debian:bookworm-slim. With
SCALESTAGE_REGISTRY pointing at it, the scripts must take the online path: no Kubernetes
component, etcd or CoreDNS built, the node image pulled from the registry, and a kind cluster
created from it reaching Ready.

Nothing outside this test's temp dir is changed: the tools cache and .tools/bin are temp dirs, the
pulled images carry the registry's host:port in their names and are removed afterwards, the
cluster is "scalestage-online" (never "scalestage") with its own kubeconfig.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VERSIONS = dict(re.findall(r"^([A-Z_]+)=(\S+)", (REPO / "tools/versions.env").read_text(), re.M))
K8S = VERSIONS["KUBERNETES_VERSION"]
# kind's node image as pinned (kindest/node:<tag>@sha256:...), without its digest
KIND_NODE_TAG = VERSIONS["KIND_NODE_IMAGE"].split("@")[0]
OFFLINE_NODE_IMAGE = f"scalestage/kind-node:{K8S}"
DEBIAN_BASE = "scalestage/debian-base:bookworm"
CLUSTER = "scalestage-online"
# the tools the online path needs, and those it must not build
ONLINE_TOOLS = {"kind": VERSIONS["KIND_VERSION"], "helm": VERSIONS["HELM_VERSION"],
                "kubectl": K8S}
NEVER_BUILT = ("kubernetes", "etcd", "coredns")


def sh(*cmd: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str
    log: Path

    def requests(self, pattern: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if re.search(pattern, line)]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The temp dir; removed afterwards (the registry's storage alone holds 0.5 GB)."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("Docker is not running (make docker)")
    for image in (OFFLINE_NODE_IMAGE, DEBIAN_BASE):
        if not image_exists(image):
            pytest.skip(f"{image} missing: run `make node-image` first")
    path = tmp_path_factory.mktemp("online")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(work: Path):
    """The registry on a free loopback port, its storage in the temp dir; removed afterwards with
    every image name this test made under its host:port."""
    bin_dir = work / "registry-bin"
    sh(str(REPO / "hack" / "tools.sh"), "registry",
       env={**os.environ, "SCALESTAGE_TOOLS_BIN": str(bin_dir)}, timeout=900)
    host = f"127.0.0.1:{free_port()}"
    config = work / "registry.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(work / "storage")}},
        "http": {"addr": host}}))
    log = work / "registry.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(bin_dir / "registry"), "serve", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the registry did not start:\n{log.read_text()}") from None
                time.sleep(0.3)
        yield Registry(host, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        # by tag, and by digest (the node image is pulled by its pinned digest, with no tag)
        names = sh("docker", "images", "--digests", "--format",
                   "{{.Repository}}:{{.Tag}} {{.Repository}}@{{.Digest}}").stdout.split()
        ours = [n for n in names if n.startswith(f"{host}/") and "<none>" not in n]
        if ours:  # copies of our own images: only the names go
            subprocess.run(["docker", "rmi", *ours], capture_output=True)


def serve(registry: Registry, local: str, name: str) -> tuple[str, str]:
    """Push LOCAL as NAME (a Docker Hub name), then drop the local copy of that name, so the
    online path has to pull it. Returns the name the registry serves it under and its digest."""
    ref = f"{registry.host}/{name if '/' in name.split(':')[0] else 'library/' + name}"
    sh("docker", "tag", local, ref)
    sh("docker", "push", "-q", ref, timeout=900)
    repo = ref.rsplit(":", 1)[0]
    digests = sh("docker", "image", "inspect", "-f", "{{join .RepoDigests \" \"}}", ref).stdout
    digest = next(d for d in digests.split() if d.startswith(f"{repo}@")).split("@")[1]
    sh("docker", "rmi", ref)
    return ref, digest


@pytest.fixture(scope="module")
def served(registry: Registry) -> dict[str, str]:
    started = time.monotonic()
    node, digest = serve(registry, OFFLINE_NODE_IMAGE, KIND_NODE_TAG)
    # the online path pulls by the pinned digest: ours stands in for kind's
    refs = {"node": f"{node}@{digest}", "node_pin": f"{KIND_NODE_TAG}@{digest}",
            "node_digest": digest,
            "debian": serve(registry, DEBIAN_BASE, "debian:bookworm-slim")[0]}
    print(f"\npushed the node image and the Debian base in {time.monotonic() - started:.0f} s")
    return refs


@pytest.fixture(scope="module")
def online_env(work: Path, registry: Registry, served: dict[str, str]) -> dict[str, str]:
    """The environment of an online run: SCALESTAGE_REGISTRY set, a tools cache holding only the
    online tools (copies of ours), no .tools/bin on PATH."""
    tools = work / "cache" / "tools"
    ours = Path(os.environ.get("SCALESTAGE_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scalestage") / "tools"
    for tool, version in ONLINE_TOOLS.items():
        found = [p for p in (ours / f"{tool}-{version}", ours / f"kubernetes-{K8S}",
                             REPO / ".tools" / "bin") if (p / tool).is_file()]
        if not found:
            pytest.skip(f"no {tool} {version} to copy: run `make tools` first")
        (tools / f"{tool}-{version}").mkdir(parents=True)
        shutil.copy2(found[0] / tool, tools / f"{tool}-{version}" / tool)
        (tools / f"{tool}-{version}" / ".complete").touch()
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not p.startswith(str(REPO / ".tools")))
    env = {**os.environ, "PATH": path, "SCALESTAGE_REGISTRY": registry.host,
           "SCALESTAGE_CACHE": str(work / "cache"), "SCALESTAGE_TOOLS_BIN": str(work / "bin"),
           "KUBECONFIG": str(work / "kubeconfig"), "SCALESTAGE_KIND_NODE_IMAGE": served["node_pin"]}
    env.pop("SCALESTAGE_OFFLINE", None)
    env.pop("SCALESTAGE_NODE_IMAGE", None)
    return env


def test_tools_online_build_no_kubernetes(served, online_env, work: Path):
    started = time.monotonic()
    log = sh(str(REPO / "hack" / "tools.sh"), "up", env=online_env).stderr
    print(f"\ntools phase of `make up`, online, warm: {time.monotonic() - started:.1f} s")
    assert f"{served['node']} is served" in log
    # from the cache, or from PATH where the machine has them at the pinned versions
    assert re.search(r"tools: for up, online: nothing to build \(kind=(cache|path) "
                     r"helm=(cache|path) kubectl=(cache|path)\)", log), log
    assert "building" not in log
    assert sorted(p.name for p in (work / "bin").iterdir()) == ["helm", "kind", "kubectl"]
    cache = [p.name for p in (work / "cache" / "tools").iterdir()]
    assert not [c for c in cache if c.startswith(NEVER_BUILT)], cache


def test_images_online_use_the_registry_bases(served, online_env):
    out = sh(str(REPO / "hack" / "images.sh"), "bases", env=online_env).stdout
    assert f"debian-base official: {served['debian']}" in out
    host = online_env["SCALESTAGE_REGISTRY"]
    assert f"python-base {host}/library/python:3.11-slim" in out
    assert f"postgres {host}/library/postgres:15" in out


def test_cluster_from_the_pulled_node_image(served, online_env, registry: Registry, work: Path):
    manifest = rf"(GET|HEAD) /v2/kindest/node/manifests/{served['node_digest']}"
    pulls_before = len(registry.requests(manifest))
    image = sh(str(REPO / "hack" / "cluster.sh"), "node-image", env=online_env).stdout.strip()
    assert image == served["node"]
    assert len(registry.requests(manifest)) > pulls_before
    assert image_exists(image)

    # one node, no host ports (the "scalestage" cluster holds them); this kindest/node is our
    # offline image under kind's name, so it needs the etcd/CoreDNS tags cluster.sh adds for it
    config = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
              "nodes": [{"role": "control-plane"}],
              "kubeadmConfigPatches": [
                  "kind: KubeletConfiguration\nfailCgroupV1: false\n",
                  "kind: ClusterConfiguration\n"
                  f"etcd:\n  local:\n    imageTag: \"{VERSIONS['ETCD_VERSION'][1:]}-0\"\n"
                  f"dns:\n  imageTag: \"{VERSIONS['COREDNS_VERSION']}\"\n"]}
    (work / "kind.yaml").write_text(yaml.safe_dump(config))
    kind, kubectl = str(work / "bin" / "kind"), str(work / "bin" / "kubectl")
    started = time.monotonic()
    try:
        sh(kind, "create", "cluster", "--name", CLUSTER, "--image", image,
           "--config", str(work / "kind.yaml"), "--wait", "0s", env=online_env, timeout=300)
        sh(kubectl, "--context", f"kind-{CLUSTER}", "wait", "--for=condition=Ready", "nodes",
           "--all", "--timeout=180s", env=online_env, timeout=200)
        node_image = sh("docker", "inspect", "-f", "{{.Config.Image}}",
                        f"{CLUSTER}-control-plane").stdout.strip()
        assert node_image == image
        print(f"\n{CLUSTER} Ready from {image} in {time.monotonic() - started:.0f} s")
    finally:
        subprocess.run([kind, "delete", "cluster", "--name", CLUSTER], env=online_env,
                       capture_output=True, timeout=120)
