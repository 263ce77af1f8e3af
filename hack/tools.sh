#!/usr/bin/env bash
# make tools: build the pinned upstream tools a run needs from the Go module proxy (no other
# download site is reachable on our CI machines) into a cache outside the checkout, then link them
# into .tools/bin.
#
#   hack/tools.sh [GOAL...]   what the tools are for: make goals (the Makefile passes its own,
#                             TOOLS_FOR overrides) or purposes of hack/setup_plan.py; none: all
#   cache:  ${SCALESTAGE_CACHE:-~/.cache/scalestage}/tools/<tool>-<version>/   (keyed by version;
#           CoreDNS and the CNI plugins also by the subset built: tool_dir)
#   links:  ${SCALESTAGE_TOOLS_BIN:-.tools/bin}/<binary>                        (gitignored)
#
# Which tools, and from where, is hack/setup_plan.py's decision: online (the registry serves
# kind's node image) a cluster needs only kind, helm and kubectl; offline, or for `make
# node-image`, every Kubernetes component, etcd, CoreDNS, ... (see docs/cluster.md).
# Idempotent: a tool whose cache folder is complete is only re-linked. kind, helm and kubectl
# already on PATH at the pinned version are linked from there instead of being built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../tools/versions.env
source "$ROOT/tools/versions.env"
source "$ROOT/hack/lib.sh"

CACHE="$(scalestage_cache)/tools"
BIN="${SCALESTAGE_TOOLS_BIN:-$ROOT/.tools/bin}"
mkdir -p "$CACHE" "$BIN"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
command -v go >/dev/null || die "Go is required to build the tools (https://go.dev/dl or apt-get install golang)"

# link_all DIR: link every executable in DIR into .tools/bin.
link_all() {
  local f
  for f in "$1"/*; do
    if [[ -x "$f" && -f "$f" ]]; then ln -sfn "$f" "$BIN/$(basename "$f")"; fi
  done
}

# path_at_version NAME: NAME's path on PATH (outside .tools) when it prints the pinned version.
path_at_version() {
  local name=$1 found args=(version)
  [[ $name == kubectl ]] && args=(version --client)
  found="$(PATH="$(echo "$PATH" | tr ':' '\n' | grep -vF "$BIN" | paste -sd:)" command -v "$name" || true)"
  [[ -n "$found" ]] && "$found" "${args[@]}" 2>/dev/null | grep -q -- "$(version_of "$name")" && echo "$found"
}

version_of() {
  case $1 in
    kubernetes|kubectl) echo "$KUBERNETES_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kind) echo "$KIND_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    crictl) echo "$CRICTL_VERSION" ;;
    cni-plugins) echo "$CNI_PLUGINS_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    local-path-provisioner) echo "$LOCAL_PATH_PROVISIONER_VERSION" ;;
    kube-router) echo "$KUBE_ROUTER_VERSION" ;;
    registry) echo "$DISTRIBUTION_VERSION" ;;
    *) die "tools: no pinned version for $1" ;;
  esac
}

# quietly CMD...: run CMD, showing its output only when it fails.
quietly() {
  local out
  out="$("$@" 2>&1)" || { echo "$out" >&2; return 1; }
}

# tool_dir NAME: NAME's cache folder, keyed by its version (and, for a tool built with a chosen
# subset, by that subset: an older full build is never taken for it).
tool_dir() {
  local key
  key="$1-$(version_of "$1")"
  case $1 in
    coredns) key+="-plugins-$(echo "${COREDNS_PLUGINS[*]}" | sha256sum | cut -c1-8)" ;;
    cni-plugins) key+="-$(echo "${CNI_PLUGINS[*]}" | sha256sum | cut -c1-8)" ;;
  esac
  echo "$CACHE/$key"
}

# tool NAME BUILD_FUNCTION: build into the cache once, then link.
tool() {
  local name=$1 build=$2 version dir
  version=$(version_of "$name") dir=$(tool_dir "$name")
  if [[ -f "$dir/.complete" ]]; then
    log "tools: $name $version present"
  else
    local started=$SECONDS
    log "tools: building $name $version ..."
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    with_heartbeat "tools: building $name" "$build" "$dir.tmp" "$version"
    rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir/.complete"
    log "tools: built $name $version in $((SECONDS - started)) s"
  fi
  link_all "$dir"
}

# --- Kubernetes: a wrapper module, because k8s.io/kubernetes replaces its staging modules locally.
# kubernetes_cmds OUT VERSION CMD...: build k8s.io/kubernetes/cmd/CMD... into OUT.
kubernetes_cmds() {
  local out=$1 version=$2; shift 2
  local src="$CACHE/src/kubernetes-$version"
  local minor=${version#v1.}; minor=${minor%%.*}
  mkdir -p "$src"
  (
    cd "$src"
    if [[ ! -f go.sum ]]; then
      local gomod
      gomod="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
      {
        echo "module scalestage.dev/tools/kubernetes"
        echo
        echo "go $(sed -n 's/^go //p' "$gomod")"
        echo
        echo "replace ("
        # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.<minor>.<patch>`
        sed -n "s#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.${version#v1.}#p" "$gomod"
        echo ")"
      } > go.mod
      quietly go get "k8s.io/kubernetes@$version"
    fi
    local now ldflags="-s -w" pkg
    now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$now"
    done
    go build -mod=mod -trimpath -ldflags "$ldflags" -o "$out/" "${@/#/k8s.io/kubernetes/cmd/}"
  )
}

build_kubernetes() {
  kubernetes_cmds "$1" "$2" kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm kubectl
}

# kubectl alone, for the online path (no Kubernetes component runs on the host there).
build_kubectl() { kubernetes_cmds "$1" "$2" kubectl; }

# --- etcd: the server module replaces its siblings locally too; require them all at one version.
build_etcd() {
  local out=$1 version=$2
  local src="$CACHE/src/etcd-$version"
  mkdir -p "$src"
  (
    cd "$src"
    cat > main.go <<'GO'
// etcd server, built from the pinned etcd modules (see hack/tools.sh).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    if [[ ! -f go.sum ]]; then
      printf 'module scalestage.dev/tools/etcd\n\ngo 1.24\n' > go.mod
      local m mods=()
      for m in api/v3 client/pkg/v3 client/v3 pkg/v3 raft/v3 server/v3; do
        mods+=("go.etcd.io/etcd/$m@$version")
      done
      quietly go get "${mods[@]}"
      quietly go get "go.etcd.io/etcd/client/v2@v2.305.${version#v3.5.}"
      quietly go mod tidy
    fi
    go build -trimpath -ldflags "-s -w" -o "$out/etcd" .
  )
}

build_kind() { GOBIN="$1" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$2"; }

build_helm() {
  GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$2" "helm.sh/helm/v3/cmd/helm@$2"
}

# --- CoreDNS with only the plugins of the Corefile kubeadm writes (k8s.io/kubernetes
# cmd/kubeadm/app/phases/addons/dns/manifests.go; `prometheus` is the metrics package), not the
# other 45 (cloud DNS SDKs, etcd, tracing, ...) of `go install coredns@version`: 761 packages to
# compile instead of 1,277. Directive order is core/dnsserver's own list; a directive not linked in
# is only unknown. `coredns -plugins` lists what a build has.
COREDNS_PLUGINS=(errors health ready kubernetes metrics forward cache loop reload loadbalance)
build_coredns() {
  local out=$1 version=$2 p
  local src
  src="$CACHE/src/$(basename "$(tool_dir coredns)")"
  mkdir -p "$src"
  (
    cd "$src"
    {
      echo "// CoreDNS with the plugins kubeadm's Corefile uses (generated by hack/tools.sh)."
      echo "package main"
      echo
      echo "import ("
      echo '	"github.com/coredns/coredns/coremain"'
      echo
      for p in "${COREDNS_PLUGINS[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/$p\""; done
      echo ")"
      echo
      echo "func main() { coremain.Run() }"
    } > main.go
    if [[ ! -f go.sum ]]; then
      printf 'module scalestage.dev/tools/coredns\n\ngo 1.24.0\n' > go.mod
      quietly go get "github.com/coredns/coredns@$version"
      quietly go mod tidy
    fi
    go build -trimpath -ldflags "-s -w" -o "$out/coredns" .
  )
}

# local-path-provisioner: the default StorageClass of the offline kind node image (hack/node-image.sh).
build_local_path_provisioner() {
  GOBIN="$1" go install -trimpath -ldflags "-s -w -X main.VERSION=$2" "github.com/rancher/local-path-provisioner@$2"
}

build_crictl() {
  GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$2" "sigs.k8s.io/cri-tools/cmd/crictl@$2"
}

# kube-router: the NetworkPolicy enforcer a cluster on our node image gets (hack/netpol.sh puts it
# in an image); built with the node image's tools so it overlaps the image work of `make up`.
build_kube_router() {
  local module=github.com/cloudnativelabs/kube-router/v2
  GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X $module/pkg/version.Version=$2" "$module/cmd/kube-router@$2"
}

# The registry server (distribution), for tests of the online path against a local registry.
build_registry() {
  GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$2" \
    "github.com/distribution/distribution/v3/cmd/registry@$2"
}

# The CNI plugins live in their own folder: they are installed into node images, not run here.
# Only those the offline node image uses: ptp + host-local + portmap (the config tools/nodenet
# writes) and loopback (containerd's CRI sets up each pod's lo with it). One `go install` for all.
CNI_PLUGINS=(main/ptp main/loopback ipam/host-local meta/portmap)
build_cni_plugins() {
  local out=$1 version=$2 p pkgs=()
  for p in "${CNI_PLUGINS[@]}"; do
    pkgs+=("github.com/containernetworking/plugins/plugins/$p@$version")
  done
  mkdir -p "$out/cni"
  GOBIN="$out/cni" go install -trimpath \
    -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version" "${pkgs[@]}"
}

# --- the plan: probe what it depends on, then let hack/setup_plan.py decide -------------------
goals="${*:-${TOOLS_FOR:-}}"
offline="${SCALESTAGE_OFFLINE:-}"
node_image=unknown
while read -r what image; do
  [[ $what == node-image ]] || continue
  node_image=$(image_availability "$image")
  log "tools: $image is $node_image"
done < <(setup_plan probes --for "$goals" --offline "$offline" --kind-node-image "$(kind_node_image)")
cached=() on_path=()
for t in etcd kubernetes kind helm kubectl crictl cni-plugins coredns local-path-provisioner kube-router registry; do
  [[ -f "$(tool_dir "$t")/.complete" ]] && cached+=("$t")
done
for t in kind helm kubectl; do
  [[ -n "$(path_at_version "$t")" ]] && on_path+=("$t")
done
plan=$(setup_plan plan --for "$goals" --offline "$offline" --node-image "$node_image" \
  --cached "${cached[*]}" --on-path "${on_path[*]}" --kind-node-image "$(kind_node_image)") \
  || die "tools: no plan (see above)"
eval "$plan"
log "tools: for ${goals:-all}${PLAN_MODE:+, $PLAN_MODE}: ${PLAN_BUILDS:-nothing} to build (${PLAN_TOOLS})"

started=$SECONDS
for entry in $PLAN_TOOLS; do
  t=${entry%%=*} source=${entry#*=}
  case $source in
    path) ln -sfn "$(path_at_version "$t")" "$BIN/$t"; log "tools: $t $(version_of "$t") from PATH" ;;
    kubernetes) ln -sfn "$CACHE/kubernetes-$KUBERNETES_VERSION/kubectl" "$BIN/kubectl" ;;
    cache|build) tool "$t" "build_${t//-/_}" ;;
  esac
  [[ $t == cni-plugins ]] && ln -sfn "$(tool_dir cni-plugins)/cni" "$(dirname "$BIN")/cni"
done
log "tools: all present in $BIN ($((SECONDS - started)) s)"
