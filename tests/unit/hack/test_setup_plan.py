"""hack/setup_plan.py: what a setup run builds and pulls, from what is reachable and cached."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[3] / "hack" / "setup_plan.py"
_spec = importlib.util.spec_from_file_location("setup_plan", _PATH)
sp = importlib.util.module_from_spec(_spec)
sys.modules["setup_plan"] = sp  # dataclasses look their module up there
_spec.loader.exec_module(sp)

NODE_IMAGE = {"etcd", "kubernetes", "kind", "helm", "crictl", "cni-plugins", "coredns",
              "local-path-provisioner"}
# an offline cluster also gets kube-router, its NetworkPolicy enforcer
EVERYTHING = NODE_IMAGE | {"kube-router"}
KIND_NODE_IMAGE = ("kindest/node:v1.34.0"
                   "@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a")


def decide(goals: str, **facts) -> sp.Plan:
    for key in ("cached", "on_path"):
        facts[key] = frozenset(facts.get(key, ()))
    return sp.plan(sp.Facts(purposes=sp.purposes_of(goals.split()), **facts))


def tools(plan: sp.Plan) -> dict[str, str]:
    return dict(plan.tools)


# --- purposes -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("goals", "purposes"), [
    ("", ("all",)),
    ("tools", ("all",)),
    ("up", ("cluster",)),
    ("cluster test-e2e", ("cluster",)),
    ("test", ("cluster", "test-operator")),
    ("test-operator", ("test-operator",)),
    ("node-image", ("node-image",)),
    ("some-new-target", ("all",)),
])
def test_make_goals_map_to_purposes(goals, purposes):
    assert sp.purposes_of(goals.split()) == purposes


# --- the online path ----------------------------------------------------------------------------

def test_up_online_builds_only_kind_helm_and_kubectl():
    plan = decide("up", node_image=sp.SERVED)
    assert plan.mode == "online" and plan.node_image == "pull"
    assert tools(plan) == {"kind": "build", "helm": "build", "kubectl": "build"}


def test_up_online_with_the_node_image_present_pulls_nothing():
    assert decide("up", node_image=sp.PRESENT).node_image == "present"


def test_up_online_takes_tools_from_path_then_cache():
    plan = decide("cluster", node_image=sp.SERVED, on_path={"kind", "kubectl"},
                  cached={"kind", "helm"})
    assert tools(plan) == {"kind": "path", "helm": "cache", "kubectl": "path"}
    assert plan.builds() == ()


def test_online_kubectl_comes_from_a_cached_kubernetes_set_before_being_built():
    plan = decide("up", node_image=sp.SERVED, cached={"kubernetes"})
    assert tools(plan)["kubectl"] == "kubernetes"
    assert "kubernetes" not in tools(plan)


def test_online_kubectl_prefers_its_own_cache():
    plan = decide("up", node_image=sp.SERVED, cached={"kubernetes", "kubectl"})
    assert tools(plan)["kubectl"] == "cache"


def test_forced_online_without_the_node_image_is_an_error():
    with pytest.raises(sp.PlanError, match="SCALESTAGE_OFFLINE=0"):
        decide("up", offline="0", node_image=sp.ABSENT)


def test_make_test_online_builds_the_control_plane_but_no_node_image_parts():
    plan = decide("test", node_image=sp.SERVED)
    assert set(tools(plan)) == {"kind", "helm", "kubectl", "kubernetes", "etcd"}
    # kubectl then comes with the Kubernetes set being built, not in a build of its own
    assert tools(plan)["kubectl"] == "kubernetes"


# --- the offline path (as before plans: everything, kubectl from the Kubernetes set) -------------

@pytest.mark.parametrize("facts", [
    {"offline": "1", "node_image": sp.PRESENT},
    {"node_image": sp.ABSENT},
    {"node_image": sp.UNKNOWN},
])
def test_up_offline_builds_everything_and_our_node_image(facts):
    plan = decide("up", **facts)
    assert plan.mode == "offline" and plan.node_image == "build"
    assert set(tools(plan)) == EVERYTHING | {"kubectl"}
    assert tools(plan)["kubectl"] == "kubernetes"
    assert set(plan.builds()) == EVERYTHING


def test_offline_uses_the_cache_and_path_as_before():
    plan = decide("test", offline="1", cached=EVERYTHING, on_path={"kind", "helm", "kubectl"})
    assert plan.builds() == ()
    assert tools(plan)["kind"] == tools(plan)["helm"] == "path"
    assert tools(plan)["kubernetes"] == "cache" and tools(plan)["kubectl"] == "kubernetes"


@pytest.mark.parametrize("goals", ["tools", "node-image", "anything-else"])
@pytest.mark.parametrize("node_image", [sp.SERVED, sp.ABSENT])
def test_everything_purposes_ignore_the_registry(goals, node_image):
    plan = decide(goals, node_image=node_image)
    expected = NODE_IMAGE if goals == "node-image" else EVERYTHING
    assert set(tools(plan)) == expected | {"kubectl"} and plan.node_image == ""


def test_kube_router_is_built_in_the_tools_phase_only_for_our_node_image():
    assert "kube-router" in tools(decide("up", offline="1"))
    assert "kube-router" not in tools(decide("up", node_image=sp.SERVED))
    # hack/netpol.sh asks for it alone when a run did not build it
    assert tools(decide("netpol")) == {"kube-router": "build"}
    assert tools(decide("netpol", cached={"kube-router"})) == {"kube-router": "cache"}


def test_the_operator_tier_needs_its_control_plane_and_helm_whatever_the_registry():
    for offline in ("", "1"):
        plan = decide("test-operator", offline=offline)
        assert set(tools(plan)) == {"kubernetes", "etcd", "helm", "kubectl"}


def test_the_registry_is_built_only_for_the_registry_test():
    assert tools(decide("registry")) == {"registry": "build"}
    assert decide("registry").mode == ""
    assert "registry" not in tools(decide("tools"))


# --- base images --------------------------------------------------------------------------------

@pytest.mark.parametrize(("offline", "bases", "expected"), [
    ("", sp.SERVED, "official"),
    ("", sp.PRESENT, "official"),
    ("", sp.ABSENT, "debian"),
    ("1", sp.PRESENT, "debian"),
    ("1", sp.UNKNOWN, "debian"),
    ("", sp.UNKNOWN, ""),
])
def test_base_images(offline, bases, expected):
    assert decide("registry", offline=offline, bases=bases).bases == expected


def test_forced_online_bases_need_the_registry():
    with pytest.raises(sp.PlanError):
        decide("registry", offline="0", bases=sp.ABSENT)


# --- probes -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("goals", "offline", "expected"), [
    ("up", "", ("node-image",)),
    ("test", "0", ("node-image",)),
    ("up", "1", ()),
    ("test-operator", "", ()),
    ("tools", "", ()),
    ("node-image cluster", "", ()),
])
def test_probes_only_what_changes_the_plan(goals, offline, expected):
    assert sp.probes(sp.purposes_of(goals.split()), offline) == expected


# --- registry names and the shell output --------------------------------------------------------

@pytest.mark.parametrize(("name", "registry", "ref"), [
    ("kindest/node:v1.34.4", "", "kindest/node:v1.34.4"),
    ("kindest/node:v1.34.4", "127.0.0.1:5000", "127.0.0.1:5000/kindest/node:v1.34.4"),
    (KIND_NODE_IMAGE, "127.0.0.1:5000", f"127.0.0.1:5000/{KIND_NODE_IMAGE}"),
    ("debian@sha256:0123", "127.0.0.1:5000", "127.0.0.1:5000/library/debian@sha256:0123"),
    ("debian:bookworm-slim", "127.0.0.1:5000", "127.0.0.1:5000/library/debian:bookworm-slim"),
    ("python:3.11-slim", "mirror.example:443", "mirror.example:443/library/python:3.11-slim"),
])
def test_image_refs(name, registry, ref):
    assert sp.image_ref(name, registry) == ref


def test_cli_prints_shell_assignments(capsys):
    assert sp.main(["plan", "--for", "up", "--node-image", "served", "--cached", "kind helm",
                    "--registry", "127.0.0.1:5000", "--kind-node-image", KIND_NODE_IMAGE]) == 0
    values = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    values = {k: shlex.split(v)[0] if v else "" for k, v in values.items()}
    assert values == {
        "PLAN_MODE": "online", "PLAN_NODE_IMAGE": "pull", "PLAN_BASES": "",
        "PLAN_TOOLS": "kind=cache helm=cache kubectl=build", "PLAN_BUILDS": "kubectl",
        "PLAN_ONLINE_NODE_IMAGE": f"127.0.0.1:5000/{KIND_NODE_IMAGE}",
    }


def test_cli_fails_with_a_message_on_an_impossible_plan(capsys):
    assert sp.main(["plan", "--for", "up", "--offline", "0", "--node-image", "absent"]) == 2
    assert "SCALESTAGE_OFFLINE=0" in capsys.readouterr().err


def test_cli_names_the_images_to_probe(capsys):
    assert sp.main(["probes", "--for", "up", "--registry", "127.0.0.1:5000",
                    "--kind-node-image", KIND_NODE_IMAGE]) == 0
    assert capsys.readouterr().out == f"node-image 127.0.0.1:5000/{KIND_NODE_IMAGE}\n"
    assert sp.main(["probes", "--for", "up", "--offline", "1"]) == 0
    assert capsys.readouterr().out == ""


def test_kind_node_image_pin_is_kinds_own_default():
    """tools/versions.env pins the node image kind's pinned release defaults to (not
    kindest/node:<KUBERNETES_VERSION>, which kind may not publish)."""
    versions = dict(line.split("=", 1) for line in (_PATH.parents[1] / "tools/versions.env")
                    .read_text().splitlines() if line and not line.startswith("#"))
    assert versions["KIND_NODE_IMAGE"] == KIND_NODE_IMAGE
    assert versions["KIND_VERSION"] == "v0.30.0"
