# Shared helpers for hack/*.sh (sourced, not run).

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Slow builds are cached outside the checkout so a fresh clone (CI) reuses them.
scalestage_cache() { echo "${SCALESTAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scalestage}"; }

# as_root CMD...: run a command as root (sudo when we are not root already).
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: install Debian packages that are missing; a no-op when all are present.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  log "apt: installing ${missing[*]}"
  # An empty or stale package list finds nothing: refresh once per hour at most.
  if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name "*Packages*" -mmin -60 2>/dev/null | head -1)" ]]; then
    as_root apt-get update -qq
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# clock SECONDS: "1 min 05 s" / "42 s", for progress lines.
clock() {
  local s=$1
  if (( s >= 60 )); then printf '%d min %02d s' $((s / 60)) $((s % 60)); else printf '%d s' "$s"; fi
}

# with_heartbeat WHAT CMD...: run CMD, saying every minute that WHAT is still going (cold builds of
# Kubernetes or Tilt are silent for many minutes on two cores).
with_heartbeat() {
  local what=$1 started=$SECONDS ticks=0; shift
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( ++ticks % 60 == 0 )) && kill -0 "$pid" 2>/dev/null; then
      log "$what: still going ($((SECONDS - started)) s)"
    fi
  done
  wait "$pid"
}

# setup_plan ARGS...: the decisions of hack/setup_plan.py (what to build, pull, which images), on
# SCALESTAGE_REGISTRY (a registry serving Docker Hub's names; unset: Docker's defaults).
setup_plan() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/setup_plan.py" "$@" --registry "${SCALESTAGE_REGISTRY:-}"
}

# kind_node_image: the node image the online path pulls (tools/versions.env, sourced by the
# caller); SCALESTAGE_KIND_NODE_IMAGE overrides it (tests/online serves its own under kind's name).
kind_node_image() { echo "${SCALESTAGE_KIND_NODE_IMAGE:-$KIND_NODE_IMAGE}"; }

# registry_image NAME: a Docker Hub image as SCALESTAGE_REGISTRY serves it (NAME itself when unset).
registry_image() { setup_plan image --name "$1"; }

# node_image_plan [pull]: "build" (the offline node image) or what else setup_plan decides for the
# cluster's node image, from whether kind's image is here or served (with pull: pulled); fails when
# SCALESTAGE_OFFLINE=0 and it cannot be had. One decision for cluster.sh and node-image.sh prepare.
node_image_plan() {
  local offline="${SCALESTAGE_OFFLINE:-}" availability=absent plan
  [[ $offline == 1 ]] || availability=$(image_availability "$(registry_image "$(kind_node_image)")" "$@")
  plan=$(setup_plan plan --for cluster --offline "$offline" --node-image "$availability" \
    --kind-node-image "$(kind_node_image)") || return 1
  eval "$plan"
  echo "$PLAN_NODE_IMAGE"
}

# image_availability IMAGE [pull]: "present" (in Docker), "served" (the registry has it; with
# pull, it is pulled and so present) or "absent" (no registry answers, or it lacks IMAGE).
image_availability() {
  if docker image inspect "$1" >/dev/null 2>&1; then echo present
  elif [[ ${2:-} == pull ]]; then
    if timeout 120 docker pull -q "$1" >/dev/null 2>&1; then echo present; else echo absent; fi
  elif timeout 60 docker manifest inspect --insecure "$1" >/dev/null 2>&1; then echo served
  else echo absent
  fi
}
