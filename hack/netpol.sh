#!/usr/bin/env bash
# The NetworkPolicy enforcer of the offline kind cluster (docs/network-policies.md): kube-router's
# firewall, built from the Go module proxy, in an image on our Debian base. Nothing is pulled.
#
#   hack/netpol.sh build            the binary (hack/tools.sh builds it, cached per version) and the image
#                                   scalestage/netpol-kube-router:<version>; prints the image
#   hack/netpol.sh prepare          the image's Debian layers only (make up, next to the tools phase)
#   hack/netpol.sh manifest         the DaemonSet (images/netpol/daemonset.yaml) with the image filled in
#   hack/netpol.sh image            the image's name (builds nothing)
#   hack/netpol.sh install CLUSTER  build, load the image into kind cluster CLUSTER, apply the
#                                   DaemonSet there (context kind-CLUSTER) and wait for it
#
# Why kube-router and not sigs.k8s.io/kube-network-policies: the latter sends packets to user space
# with nftables' `queue` statement, which needs CONFIG_NFT_QUEUE; our CI kernel lacks it (`nft add
# rule ... queue num 100` fails with "No such file or directory"). kube-router uses iptables + ipset.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../tools/versions.env
source "$ROOT/tools/versions.env"
source "$ROOT/hack/lib.sh"
cd "$ROOT"

export DOCKER_BUILDKIT=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
export PATH="$ROOT/.tools/bin:$PATH"
IMAGE="scalestage/netpol-kube-router:$KUBE_ROUTER_VERSION"
DEBIAN_BASE="${DEBIAN_BASE:-scalestage/debian-base:bookworm}"
SRC="$ROOT/images/netpol"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# binary: kube-router from the tools cache; `make up` builds it in its tools phase (offline), a
# run that did not gets it built here (a few minutes cold).
binary() {
  local out
  out="$(scalestage_cache)/tools/kube-router-$KUBE_ROUTER_VERSION/kube-router"
  [[ -x "$out" ]] || "$ROOT/hack/tools.sh" netpol >&2
  echo "$out"
}

build() {
  image_exists "$DEBIAN_BASE" || die "netpol: $DEBIAN_BASE missing; run 'make images' first"
  local bin key
  bin=$(binary)
  # rebuilt only when the binary, the Dockerfile, the wrapper or the base changes
  key=$( { sha256sum "$bin" "$SRC/Dockerfile" "$ROOT/images/kind-node/components/iptables-autodetect" | cut -d' ' -f1;
           docker image inspect -f '{{.Id}}' "$DEBIAN_BASE"; } | sha256sum | cut -c1-16)
  if image_exists "$IMAGE" \
     && [[ "$(docker image inspect -f '{{index .Config.Labels "dev.scalestage.netpol.key"}}' "$IMAGE")" == "$key" ]]; then
    log "netpol: $IMAGE up to date"
  else
    log "netpol: building $IMAGE"
    docker_build "$IMAGE" "$bin" --label "dev.scalestage.netpol.key=$key"
  fi
  echo "$IMAGE"
}

# docker_build TAG KUBE_ROUTER [docker build options]: the image from the Dockerfile, the iptables
# wrapper and KUBE_ROUTER as the binary; the build's output is shown only when it fails.
docker_build() {
  local tag=$1 bin=$2 ctx output
  shift 2
  ctx=$(mktemp -d)
  CONTEXT_DIR=$ctx
  trap 'rm -rf "${CONTEXT_DIR:-}"' EXIT
  cp "$bin" "$ctx/kube-router"
  cp "$SRC/Dockerfile" "$ROOT/images/kind-node/components/iptables-autodetect" "$ctx/"
  output="$(docker build -t "$tag" "$@" --build-arg "BASE_IMAGE=$DEBIAN_BASE" "$ctx" 2>&1)" || {
    echo "$output" | tail -30 >&2
    die "netpol: building $tag failed"
  }
}

# prepare: the image's Debian layers into Docker's layer cache (built without kube-router: every
# step before its COPY is then cached), while the tools phase still compiles it (make up).
prepare() {
  image_exists "$DEBIAN_BASE" || die "netpol: $DEBIAN_BASE missing; run 'make images' first"
  docker_build scalestage/netpol-prepared:latest /dev/null   # an empty kube-router
  log "netpol: image layers prepared"
}

manifest() { sed "s|@IMAGE@|$IMAGE|g" "$SRC/daemonset.yaml"; }

install() {
  local cluster=${1:?usage: $0 install CLUSTER}
  build >/dev/null
  SCALESTAGE_CLUSTER="$cluster" "$ROOT/hack/cluster.sh" load "$IMAGE"   # no unpacking: see there
  manifest | kubectl --context "kind-$cluster" apply -f -
  kubectl --context "kind-$cluster" -n kube-system rollout status daemonset/netpol --timeout=180s
}

case "${1:-build}" in
  build) build ;;
  prepare) prepare ;;
  manifest) manifest ;;
  image) echo "$IMAGE" ;;
  install) shift; install "$@" ;;
  *) die "usage: $0 build|prepare|manifest|image|install CLUSTER" ;;
esac
