#!/usr/bin/env python3
"""What a setup run builds and pulls: a pure decision, for hack/tools.sh, cluster.sh and images.sh.

The scripts probe (is an image present, does the registry serve it, which tools are cached or on
PATH at the pinned version) and pass the answers here; this module only decides. Standard library
only: `make tools` runs before the virtualenv exists.

    hack/setup_plan.py probes --for cluster --offline "$SCALESTAGE_OFFLINE" \\
        --kind-node-image kindest/node:v1.34.0@sha256:...
        "WHAT IMAGE" lines: the images whose availability changes the plan (none: probe nothing)
    hack/setup_plan.py plan --for cluster --offline "" --node-image served \\
        --cached "kind helm" --on-path "" --registry localhost:5000
        shell assignments (PLAN_*) to eval; exit 2 with a message when the plan is impossible
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass

# Every tool hack/tools.sh knows, in build order. kubectl is also part of "kubernetes"; it has its
# own entry because the online path needs it alone (a fraction of the whole set's build time).
TOOLS = ("etcd", "kubernetes", "kind", "helm", "kubectl", "crictl", "cni-plugins", "coredns",
         "local-path-provisioner", "kube-router", "registry")
# What the offline node image is made of (hack/node-image.sh).
NODE_IMAGE_TOOLS = frozenset({"kubernetes", "etcd", "coredns", "crictl", "cni-plugins",
                              "local-path-provisioner"})
# A cluster on our node image also gets a NetworkPolicy enforcer (kind's kindnetd is one, our
# nodenet is not): kube-router's firewall, hack/netpol.sh.
ENFORCER_TOOLS = frozenset({"kube-router"})
# What runs a kind cluster from the host, and installs the operator into it.
CLUSTER_TOOLS = frozenset({"kind", "helm", "kubectl"})
# Everything `make tools` built before plans existed: what an unknown purpose gets.
ALL_TOOLS = NODE_IMAGE_TOOLS | CLUSTER_TOOLS
# The tools that may come from PATH when they print the pinned version.
PATH_TOOLS = frozenset({"kind", "helm", "kubectl"})

# What each purpose (a make goal, or a script's own name for its job) needs. A purpose that needs
# a cluster also needs the offline node image's tools when the online node image is not there.
NEEDS: dict[str, tuple[frozenset[str], bool]] = {
    # purpose: (tools needed whatever the registry says, needs a kind cluster)
    "cluster": (CLUSTER_TOOLS, True),
    "test-operator": (frozenset({"kubernetes", "etcd", "helm", "kubectl"}), False),
    "node-image": (ALL_TOOLS, False),
    "all": (ALL_TOOLS | ENFORCER_TOOLS, False),
    "registry": (frozenset({"registry"}), False),
    "netpol": (ENFORCER_TOOLS, False),   # hack/netpol.sh
    "images": (frozenset(), False),   # hack/images.sh: only the base images are its question
}
# Make goals that mean one of the purposes above (`make test` runs test-operator and test-e2e).
ALIASES: dict[str, tuple[str, ...]] = {
    "tools": ("all",),
    "up": ("cluster",),
    "test": ("cluster", "test-operator"),
    "test-online": ("node-image", "registry"),
    **{goal: ("cluster",) for goal in (
        "test-e2e", "operator-install", "load-images",
        "up-cluster-app", "tilt-up", "test-tilt")},
}

# Image availability, as the scripts probe it.
PRESENT, SERVED, ABSENT, UNKNOWN = "present", "served", "absent", "unknown"
AVAILABILITY = (PRESENT, SERVED, ABSENT, UNKNOWN)

# The images the online path uses, as named on Docker Hub. kind's node image is pinned on its own
# (KIND_NODE_IMAGE in tools/versions.env, passed in): kind publishes some Kubernetes patch
# releases only, so it need not be KUBERNETES_VERSION.
ONLINE_BASE_PROBE = "debian:bookworm-slim"


class PlanError(ValueError):
    """The facts allow no plan (SCALESTAGE_OFFLINE=0 while the registry does not serve)."""


@dataclass(frozen=True)
class Facts:
    """What the scripts found out. Availability values: present / served / absent / unknown."""

    purposes: tuple[str, ...]
    offline: str = ""                # SCALESTAGE_OFFLINE: "1" forces offline, "0" online, "" probes
    node_image: str = UNKNOWN        # the online node image (KIND_NODE_IMAGE)
    bases: str = UNKNOWN             # the official base images (probed with debian:bookworm-slim)
    cached: frozenset[str] = frozenset()   # tools complete in the cache at the pinned version
    on_path: frozenset[str] = frozenset()  # tools on PATH (outside .tools) at the pinned version


@dataclass(frozen=True)
class Plan:
    node_image: str          # "present" / "pull" (kind's, online) or "build" (ours); "" unused
    bases: str               # "official" / "debian" (our debootstrap base); "" unused
    tools: tuple[tuple[str, str], ...]   # (tool, source): "path" / "cache" / "kubernetes" / "build"

    @property
    def mode(self) -> str:
        """online / offline, or "" when the run pulls no image either way."""
        if not (self.node_image or self.bases):
            return ""
        online = self.node_image in ("present", "pull") or self.bases == "official"
        return "online" if online else "offline"

    def builds(self) -> tuple[str, ...]:
        return tuple(t for t, source in self.tools if source == "build")


def purposes_of(goals: Iterable[str]) -> tuple[str, ...]:
    """Make goals -> purposes. No goal, or one we do not know, gets everything (as before plans)."""
    out: list[str] = []
    for goal in goals or ("all",):
        for purpose in ALIASES.get(goal, (goal,) if goal in NEEDS else ("all",)):
            if purpose not in out:
                out.append(purpose)
    return tuple(out)


def _online(offline: str, availability: str, what: str) -> bool:
    """Whether to take the online path for one kind of image."""
    if offline == "1":
        return False
    if availability in (PRESENT, SERVED):
        return True
    if offline == "0":
        raise PlanError(f"SCALESTAGE_OFFLINE=0 but the registry does not serve {what}")
    return False


def needs_cluster(purposes: Iterable[str]) -> bool:
    return any(NEEDS[p][1] for p in purposes)


def probes(purposes: Iterable[str], offline: str) -> tuple[str, ...]:
    """Which availabilities change the tools plan: none when offline is forced, or when the
    purposes need the node image's tools anyway."""
    purposes = tuple(purposes)
    if offline == "1" or not needs_cluster(purposes):
        return ()
    fixed = frozenset().union(*(NEEDS[p][0] for p in purposes))
    return () if NODE_IMAGE_TOOLS <= fixed else ("node-image",)


def tool_source(tool: str, facts: Facts, building: frozenset[str]) -> str:
    """Where one needed tool comes from. The Kubernetes set, when needed, brings kubectl (as
    before: offline links it from there, whatever PATH holds)."""
    if tool == "kubectl":
        if "kubernetes" in building:
            return "kubernetes"
        if "kubectl" in facts.on_path:
            return "path"
        if "kubectl" in facts.cached:
            return "cache"
        if "kubernetes" in facts.cached:
            return "kubernetes"
        return "build"
    if tool in PATH_TOOLS and tool in facts.on_path:
        return "path"
    return "cache" if tool in facts.cached else "build"


def plan(facts: Facts) -> Plan:
    """The whole decision: node image, base images and each needed tool's source."""
    unknown = [p for p in facts.purposes if p not in NEEDS]
    if unknown:
        raise PlanError(f"unknown purpose {unknown[0]!r} (known: {', '.join(NEEDS)})")
    needed = set().union(*(NEEDS[p][0] for p in facts.purposes))
    node_image = ""
    if needs_cluster(facts.purposes):
        if _online(facts.offline, facts.node_image, "the node image"):
            node_image = "present" if facts.node_image == PRESENT else "pull"
        else:
            node_image = "build"
            needed |= NODE_IMAGE_TOOLS | ENFORCER_TOOLS
    bases = ""
    if facts.bases != UNKNOWN or facts.offline == "1":
        bases = "official" if _online(facts.offline, facts.bases, "the base images") else "debian"
    tools: list[tuple[str, str]] = []
    for tool in TOOLS:
        if tool in needed:
            # "kubernetes" only from the cache or a build; kubectl then follows it
            tools.append((tool, tool_source(tool, facts, frozenset(needed))))
    return Plan(node_image=node_image, bases=bases, tools=tuple(tools))


def image_ref(name: str, registry: str) -> str:
    """A Docker Hub name (tag and/or digest) as REGISTRY serves it (a mirror's layout: official
    images in library/)."""
    if not registry:
        return name
    repo = name.split("@")[0].split(":")[0]
    return f"{registry}/{name}" if "/" in repo else f"{registry}/library/{name}"


def shell(plan_: Plan, registry: str, kind_node_image: str) -> str:
    """The plan as shell assignments."""
    values = {
        "PLAN_MODE": plan_.mode,
        "PLAN_NODE_IMAGE": plan_.node_image,
        "PLAN_BASES": plan_.bases,
        "PLAN_TOOLS": " ".join(f"{t}={s}" for t, s in plan_.tools),
        "PLAN_BUILDS": " ".join(plan_.builds()),
        "PLAN_ONLINE_NODE_IMAGE": image_ref(kind_node_image, registry),
    }
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("probes", "plan", "image"))
    parser.add_argument("--for", dest="goals", default="", help="make goals or purposes")
    parser.add_argument("--offline", default="", choices=("", "0", "1"))
    parser.add_argument("--node-image", default=UNKNOWN, choices=AVAILABILITY)
    parser.add_argument("--bases", default=UNKNOWN, choices=AVAILABILITY)
    parser.add_argument("--cached", default="")
    parser.add_argument("--on-path", default="")
    parser.add_argument("--registry", default="")
    parser.add_argument("--kind-node-image", default="", help="kind's node image, pinned")
    parser.add_argument("--name", default="", help="image: the Docker Hub name to map")
    args = parser.parse_args(argv)
    purposes = purposes_of(args.goals.split())
    try:
        if args.command == "image":
            print(image_ref(args.name, args.registry))
        elif args.command == "probes":
            probed = {"node-image": args.kind_node_image, "bases": ONLINE_BASE_PROBE}
            for what in probes(purposes, args.offline):
                print(what, image_ref(probed[what], args.registry))
        else:
            facts = Facts(purposes=purposes, offline=args.offline, node_image=args.node_image,
                          bases=args.bases, cached=_words(args.cached),
                          on_path=_words(args.on_path))
            sys.stdout.write(shell(plan(facts), args.registry, args.kind_node_image))
    except PlanError as e:
        print(f"setup plan: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
