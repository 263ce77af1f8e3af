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

# --- The Kubernetes family: Kubernetes' commands and the tools built on its client libraries
# (helm, crictl, CoreDNS, kube-router) come from ONE wrapper module, each at its pinned version.
# Minimal version selection then gives every dependency they share (client-go, api, apimachinery,
# grpc, protobuf, ...) one version, so each shared package is compiled once rather than once per
# tool, and one `go build` of several tools links them side by side. The wrapper also pins
# k8s.io/kubernetes' staging modules, which its own go.mod replaces with local folders.
FAMILY=(kubernetes kubectl helm crictl coredns kube-router)
FAMILY_MODULE=scalestage.dev/tools/family

in_family() { [[ " ${FAMILY[*]} " == *" $1 "* ]]; }

# family_packages TOOL: the main packages TOOL is built from (a binary is named after its package).
family_packages() {
  case $1 in
    kubernetes)
      printf 'k8s.io/kubernetes/cmd/%s\n' kube-apiserver kube-controller-manager kube-scheduler \
        kubelet kube-proxy kubeadm kubectl ;;
    kubectl) echo k8s.io/kubernetes/cmd/kubectl ;;   # alone for the online path
    helm) echo helm.sh/helm/v3/cmd/helm ;;
    crictl) echo sigs.k8s.io/cri-tools/cmd/crictl ;;
    coredns) echo "$FAMILY_MODULE/coredns" ;;
    kube-router) echo github.com/cloudnativelabs/kube-router/v2/cmd/kube-router ;;
  esac
}

# family_modules: the upstream modules at their pinned versions, as `go get` takes them.
family_modules() {
  echo "k8s.io/kubernetes@$KUBERNETES_VERSION" "helm.sh/helm/v3@$HELM_VERSION" \
    "sigs.k8s.io/cri-tools@$CRICTL_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2@$KUBE_ROUTER_VERSION"
}

# CoreDNS with only the plugins of the Corefile kubeadm writes (k8s.io/kubernetes
# cmd/kubeadm/app/phases/addons/dns/manifests.go; `prometheus` is the metrics package), not the
# other 45 (cloud DNS SDKs, etcd, tracing, ...) of `go install coredns@version`: 761 packages to
# compile instead of 1,277. Directive order is core/dnsserver's own list; a directive not linked in
# is only unknown. `coredns -plugins` lists what a build has.
COREDNS_PLUGINS=(errors health ready kubernetes metrics forward cache loop reload loadbalance)
coredns_main() {
  local p
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
}

# family_module: the wrapper module's folder (made once per set of versions and CoreDNS plugins).
family_module() {
  local key src
  key=$( (family_modules; echo "${COREDNS_PLUGINS[*]}") | sha256sum | cut -c1-12)
  src="$CACHE/src/family-$key"
  if [[ ! -f $src/go.sum ]]; then
    rm -rf "$src.tmp" && mkdir -p "$src.tmp/coredns"
    coredns_main > "$src.tmp/coredns/main.go"
    (
      cd "$src.tmp"
      local gomod staging="v0.${KUBERNETES_VERSION#v1.}" p
      gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
      {
        echo "module $FAMILY_MODULE"
        echo
        echo "go $(sed -n 's/^go //p' "$gomod")"
        echo
        echo "replace ("
        # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.<minor>.<patch>`
        sed -n "s#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 ${staging}#p" "$gomod"
        echo ")"
      } > go.mod
      # the main packages, for `go mod tidy` (a build tag keeps the file out of every build)
      {
        printf '//go:build tools\n\npackage tools\n\nimport (\n'
        for t in "${FAMILY[@]}"; do
          [[ $t == coredns ]] && continue
          for p in $(family_packages "$t"); do printf '\t_ "%s"\n' "$p"; done
        done | sort -u
        printf ')\n'
      } > tools.go
      # shellcheck disable=SC2046
      quietly go get $(family_modules)
      quietly go mod tidy
    )
    rm -rf "$src" && mv "$src.tmp" "$src"
  fi
  echo "$src"
}

# family_ldflags: the version stamps of every member (-X of a package a binary lacks is ignored).
family_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.} now pkg flags="-s -w"
  minor=${minor%%.*}
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$now"
  done
  flags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
  flags+=" -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
  echo "$flags"
}

# build_together TOOL...: the family tools in one `go build`, each into its cache folder.
build_together() {
  local started=$SECONDS src out t p dir pkgs=()
  src=$(family_module)
  out="$CACHE/family-build.tmp"
  rm -rf "$out" && mkdir -p "$out"
  for t in "$@"; do
    for p in $(family_packages "$t"); do [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p"); done
  done
  log "tools: building $* together (one module: what they share is compiled once) ..."
  (cd "$src" && with_heartbeat "tools: building $*" \
    go build -mod=mod -trimpath -ldflags "$(family_ldflags)" -o "$out/" "${pkgs[@]}")
  for t in "$@"; do
    dir=$(tool_dir "$t")
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    for p in $(family_packages "$t"); do cp "$out/$(basename "$p")" "$dir.tmp/"; done
    rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir/.complete"
  done
  rm -rf "$out"
  log "tools: built $* in $((SECONDS - started)) s"
}

# family_member TOOL: put a family tool on BIN; build_together (or an earlier run) built it: a
# family tool has no build of its own.
family_member() {
  local dir
  dir=$(tool_dir "$1")
  [[ -f "$dir/.complete" ]] || die "tools: $1 was to be built with its family, and is not"
  log "tools: $1 $(version_of "$1") present"
  link_all "$dir"
}

# local-path-provisioner: the default StorageClass of the offline kind node image
# (hack/node-image.sh). It cannot join the family (it imports github.com/Sirupsen/logrus, which
# collides with the others' github.com/sirupsen/logrus), so it gets a module of its own that
# starts from the family's requirements: the packages it shares with them are the same build.
build_local_path_provisioner() {
  local out=$1 version=$2 family src
  family=$(family_module)
  src="$CACHE/src/local-path-provisioner-$version-$(basename "$family")"
  if [[ ! -f $src/go.sum ]]; then
    rm -rf "$src.tmp" && mkdir -p "$src.tmp"
    sed "s#^module .*#module scalestage.dev/tools/local-path-provisioner#" "$family/go.mod" > "$src.tmp/go.mod"
    cp "$family/go.sum" "$src.tmp/"
    (cd "$src.tmp" && quietly go get "github.com/rancher/local-path-provisioner@$version")
    rm -rf "$src" && mv "$src.tmp" "$src"
  fi
  (cd "$src" && go build -mod=mod -trimpath -ldflags "-s -w -X main.VERSION=$version" \
    -o "$out/local-path-provisioner" github.com/rancher/local-path-provisioner)
}

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
together=()
for entry in $PLAN_TOOLS; do
  [[ ${entry#*=} == build ]] && in_family "${entry%%=*}" && together+=("${entry%%=*}")
done
if (( ${#together[@]} )); then build_together "${together[@]}"; fi
for entry in $PLAN_TOOLS; do
  t=${entry%%=*} source=${entry#*=}
  case $source in
    path) ln -sfn "$(path_at_version "$t")" "$BIN/$t"; log "tools: $t $(version_of "$t") from PATH" ;;
    kubernetes) ln -sfn "$CACHE/kubernetes-$KUBERNETES_VERSION/kubectl" "$BIN/kubectl" ;;
    cache|build) if in_family "$t"; then family_member "$t"; else tool "$t" "build_${t//-/_}"; fi ;;
  esac
  [[ $t == cni-plugins ]] && ln -sfn "$(tool_dir cni-plugins)/cni" "$(dirname "$BIN")/cni"
done
log "tools: all present in $BIN ($((SECONDS - started)) s)"
