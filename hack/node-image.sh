#!/usr/bin/env bash
# make node-image: the kind node image for machines with no container registry, built from our own
# Dockerfile (images/kind-node) and the components `make tools` builds, with every image the
# cluster needs already inside its containerd, so nothing is ever pulled:
#
#   registry.k8s.io/kube-{apiserver,controller-manager,scheduler,proxy}:<KUBERNETES_VERSION>
#   registry.k8s.io/etcd:<ETCD_VERSION>-0, registry.k8s.io/coredns/coredns:<COREDNS_VERSION>
#     (kubeadm expects other etcd/coredns tags: `make cluster` points it at these, see cluster.sh)
#   registry.k8s.io/pause:<kubeadm's tag>        our own pause (tools/pause)
#   scalestage/kind-nodenet:<hash>               the pod network (tools/nodenet)
#   scalestage/local-path-provisioner:<version>  the default StorageClass, helper: debian-base
#
# Result: scalestage/kind-node:<KUBERNETES_VERSION> (SCALESTAGE_NODE_IMAGE overrides). Idempotent:
# the image carries a label keyed by all its inputs, and is rebuilt only when one changes.
#
#   hack/node-image.sh prepare   only what needs no tool, ahead (see prepare below)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/versions.env"
source "$ROOT/hack/lib.sh"
cd "$ROOT"

export DOCKER_BUILDKIT=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
NODE_IMAGE="${SCALESTAGE_NODE_IMAGE:-scalestage/kind-node:$KUBERNETES_VERSION}"
DEBIAN_BASE=scalestage/debian-base:bookworm
CACHE="$(scalestage_cache)/node-image"
TOOLS="$ROOT/.tools/bin"
CNI="$ROOT/.tools/cni"
SRC="$ROOT/images/kind-node"
KEY_LABEL=dev.scalestage.node-image.key
started=$SECONDS

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }

image_exists "$DEBIAN_BASE" || die "node-image: $DEBIAN_BASE missing; run 'make images' first"

# go_binary DIR: build our small Go program tools/DIR (static) into the cache, once per source change.
go_binary() {
  local src="$ROOT/tools/$1" key out
  # the same key as hack/docker-engine.sh uses for the shim: go.mod and the non-test sources
  key=$(cat "$src"/go.mod $(ls "$src"/*.go | grep -v '_test\.go$') | sha256sum | cut -c1-12)
  out="$(scalestage_cache)/bin/$1-$key"
  if [[ ! -x "$out" ]]; then
    log "node-image: building tools/$1"
    mkdir -p "$(dirname "$out")"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" . && mv "$out.tmp" "$out")
  fi
  echo "$out"
}

# put SRC DEST: hard link (no copying hundreds of MB into build contexts), or copy.
put() { ln -f "$(readlink -f "$1")" "$2" 2>/dev/null || cp -f "$(readlink -f "$1")" "$2"; }

# stage DIR FILE[:NAME]...: a fresh build context holding the FILEs (named NAME when given).
stage() {
  local dir="$CACHE/context/$1"; shift
  rm -rf "$dir" && mkdir -p "$dir"
  local f
  for f in "$@"; do
    if [[ $f == *:* ]]; then put "${f%%:*}" "$dir/${f#*:}"; else put "$f" "$dir/$(basename "$f")"; fi
  done
  echo "$dir"
}

# build TAG DOCKERFILE CONTEXT [build args...]
build() {
  local tag=$1 dockerfile=$2 context=$3; shift 3
  local t=$SECONDS output
  output="$(docker build -t "$tag" -f "$dockerfile" "$@" "$context" 2>&1)" || {
    echo "$output" | tail -30 >&2
    die "node-image: building $tag failed"
  }
  log "node-image: $tag ($((SECONDS - t)) s)"
}

# node_context DIR: the node base's build context, without binaries (the caller adds them).
node_context() {
  rm -rf "$1" && mkdir -p "$1"/{bin,sbin,cni,kind/manifests}
  cp -a "$SRC/Dockerfile" "$SRC/files" "$1/"
}

# prepare: what needs no tool built (our small Go programs) and the Debian layers of the node base
# and of the iptables images in Docker's layer cache (the same Dockerfiles, built without the
# binaries: every step before their first COPY is then cached), so the build after the tools phase
# only adds binaries. `make up` runs it next to the tools phase, when the plan is this node image.
prepare() {
  local plan ctx
  if [[ -z "${SCALESTAGE_NODE_IMAGE:-}" ]]; then
    plan=$(node_image_plan) || die "node-image: kind's node image cannot be had (SCALESTAGE_OFFLINE=0)"
    if [[ $plan != build ]]; then
      log "node-image: kind's node image will be used; nothing to prepare"
      return
    fi
  fi
  go_binary nodenet >/dev/null && go_binary pause >/dev/null && go_binary runc-shim >/dev/null
  ctx=$(stage prepare-iptables "$SRC/components/iptables-autodetect")
  : > "$ctx/none"
  build scalestage/kind-node-prepared:iptables "$SRC/components/iptables.Dockerfile" "$ctx" \
    --build-arg BINARY=none --build-arg "BASE_IMAGE=$DEBIAN_BASE"
  ctx="$CACHE/context/prepare-node"
  node_context "$ctx"
  build scalestage/kind-node-prepared:node "$ctx/Dockerfile" "$ctx" \
    --build-arg "BASE_IMAGE=$DEBIAN_BASE" --build-arg PAUSE_IMAGE=none
  "$ROOT/hack/netpol.sh" prepare   # the cluster's NetworkPolicy enforcer, installed with it
  log "node-image: prepared in $((SECONDS - started)) s"
}
if [[ ${1:-} == prepare ]]; then prepare; exit 0; fi

# --- inputs -------------------------------------------------------------------------------------
for t in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy \
         etcd coredns crictl local-path-provisioner; do
  [[ -x "$TOOLS/$t" ]] || die "node-image: $TOOLS/$t missing; run 'make tools' first"
done
for p in ptp host-local loopback portmap; do
  [[ -x "$CNI/$p" ]] || die "node-image: CNI plugin $CNI/$p missing; run 'make tools' first"
done

# kubeadm's own list decides the names the control-plane images must have.
mapfile -t KUBEADM_IMAGES < <("$TOOLS/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION")
kubeadm_image() { printf '%s\n' "${KUBEADM_IMAGES[@]}" | grep -m1 "/$1:" || die "kubeadm lists no $1 image"; }
PAUSE_IMAGE=$(kubeadm_image pause)
ETCD_IMAGE="registry.k8s.io/etcd:${ETCD_VERSION#v}-0"
COREDNS_IMAGE="registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
NODENET_BIN=$(go_binary nodenet)
PAUSE_BIN=$(go_binary pause)
SHIM_BIN=$(go_binary runc-shim)
NODENET_IMAGE="scalestage/kind-nodenet:${NODENET_BIN##*-}"
PROVISIONER_IMAGE="scalestage/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION"
HELPER_IMAGE="$DEBIAN_BASE"

# --- the images the cluster runs ----------------------------------------------------------------
log "node-image: component images for Kubernetes $KUBERNETES_VERSION"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  build "$(kubeadm_image "$c")" "$SRC/components/static.Dockerfile" "$(stage "$c" "$TOOLS/$c")" --build-arg "BINARY=$c"
done
build "$ETCD_IMAGE" "$SRC/components/static.Dockerfile" "$(stage etcd "$TOOLS/etcd")" --build-arg BINARY=etcd
build "$PROVISIONER_IMAGE" "$SRC/components/static.Dockerfile" \
  "$(stage local-path-provisioner "$TOOLS/local-path-provisioner")" --build-arg BINARY=local-path-provisioner
build "$COREDNS_IMAGE" "$SRC/components/coredns.Dockerfile" "$(stage coredns "$TOOLS/coredns")"
build "$PAUSE_IMAGE" "$SRC/components/pause.Dockerfile" "$(stage pause "$PAUSE_BIN:pause")"
ctx=$(stage kube-proxy "$TOOLS/kube-proxy" "$SRC/components/iptables-autodetect")
build "$(kubeadm_image kube-proxy)" "$SRC/components/iptables.Dockerfile" "$ctx" \
  --build-arg BINARY=kube-proxy --build-arg "BASE_IMAGE=$DEBIAN_BASE"
ctx=$(stage nodenet "$SRC/components/iptables-autodetect" "$NODENET_BIN:nodenet")
build "$NODENET_IMAGE" "$SRC/components/iptables.Dockerfile" "$ctx" \
  --build-arg BINARY=nodenet --build-arg "BASE_IMAGE=$DEBIAN_BASE"

CLUSTER_IMAGES=(
  "$(kubeadm_image kube-apiserver)" "$(kubeadm_image kube-controller-manager)"
  "$(kubeadm_image kube-scheduler)" "$(kubeadm_image kube-proxy)"
  "$ETCD_IMAGE" "$COREDNS_IMAGE" "$PAUSE_IMAGE"
  "$NODENET_IMAGE" "$PROVISIONER_IMAGE" "$HELPER_IMAGE"
)

# --- the node base: systemd, containerd, runc (+ shim), kubelet, kubeadm, CNI plugins, manifests ---
ctx="$CACHE/context/node"
node_context "$ctx"
for b in kubeadm kubelet kubectl crictl; do put "$TOOLS/$b" "$ctx/bin/$b"; done
for p in ptp host-local loopback portmap; do put "$CNI/$p" "$ctx/cni/$p"; done
put "$SHIM_BIN" "$ctx/sbin/runc-shim"
echo "$KUBERNETES_VERSION" > "$ctx/kind/version"
for m in default-cni default-storage; do
  sed -e "s|@NODENET_IMAGE@|$NODENET_IMAGE|g" -e "s|@PROVISIONER_IMAGE@|$PROVISIONER_IMAGE|g" \
      -e "s|@HELPER_IMAGE@|$HELPER_IMAGE|g" "$SRC/manifests/$m.yaml" > "$ctx/kind/manifests/$m.yaml"
done
# the images this node image runs, for cluster.sh and for people
printf '%s\n' "${CLUSTER_IMAGES[@]}" > "$ctx/kind/images"
BASE_TAG="scalestage/kind-node-base:$KUBERNETES_VERSION"
log "node-image: node base (Debian packages: systemd, containerd, runc; first build takes a minute)"
build "$BASE_TAG" "$ctx/Dockerfile" "$ctx" --build-arg "BASE_IMAGE=$DEBIAN_BASE" --build-arg "PAUSE_IMAGE=$PAUSE_IMAGE"

# --- import the images into the node's containerd -------------------------------------------------
key=$( { image_id "$BASE_TAG"; for i in "${CLUSTER_IMAGES[@]}"; do echo "$i $(image_id "$i")"; done; } | sha256sum | cut -c1-16)
if image_exists "$NODE_IMAGE" && [[ "$(docker image inspect -f "{{index .Config.Labels \"$KEY_LABEL\"}}" "$NODE_IMAGE")" == "$key" ]]; then
  log "node-image: $NODE_IMAGE present and up to date ($((SECONDS - started)) s)"
  exit 0
fi

log "node-image: importing ${#CLUSTER_IMAGES[@]} images into the node's containerd"
builder="scalestage-node-build-$$"
trap 'docker rm -f "$builder" >/dev/null 2>&1 || true' EXIT
# containerd is the container's only process (stopped cleanly before the commit).
# Not privileged: it only needs its content store here; images are unpacked on first use, in the
# running node, whose /var is a volume where overlayfs works.
docker run -d --name "$builder" --entrypoint containerd --security-opt seccomp=unconfined "$BASE_TAG" >/dev/null
for _ in $(seq 1 30); do docker exec "$builder" ctr version >/dev/null 2>&1 && break; sleep 1; done
docker exec "$builder" ctr version >/dev/null 2>&1 || {
  docker logs "$builder" 2>&1 | tail -20 >&2; die "node-image: containerd did not start in the build container"; }
docker save "${CLUSTER_IMAGES[@]}" \
  | docker exec -i "$builder" ctr --namespace=k8s.io images import --all-platforms --no-unpack - >/dev/null
imported="$(docker exec "$builder" ctr --namespace=k8s.io images list -q)"
for i in "${CLUSTER_IMAGES[@]}"; do
  [[ ${i%%/*} == *[.:]* ]] || i="docker.io/$i"   # how containerd names images without a registry
  grep -qxF "$i" <<<"$imported" || die "node-image: $i missing from the node's containerd after import"
done
# SIGTERM: `docker stop` would send the image's STOPSIGNAL, meant for systemd, which containerd ignores
docker kill -s TERM "$builder" >/dev/null
[[ "$(docker wait "$builder")" == 0 ]] || die "node-image: containerd did not stop cleanly in the build container"
previous=$(image_id "$NODE_IMAGE" 2>/dev/null || true)
docker commit \
  --change "LABEL $KEY_LABEL=$key" \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  --change 'CMD []' \
  "$builder" "$NODE_IMAGE" >/dev/null
# the image it replaces is 1.3 GB of dangling layers (kept while a cluster still runs on it)
if [[ -n "$previous" && "$previous" != "$(image_id "$NODE_IMAGE")" ]]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
log "node-image: $NODE_IMAGE ready, $(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}') ($((SECONDS - started)) s)"
