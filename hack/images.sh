#!/usr/bin/env bash
# make images: every image the project runs, tagged scalestage/*. Each Dockerfile takes its base
# image as BASE_IMAGE: online the official upstream images (from SCALESTAGE_REGISTRY when set),
# offline (SCALESTAGE_OFFLINE=1, or when debian:bookworm-slim cannot be pulled) our own Debian base
# made with debootstrap; hack/setup_plan.py decides. See docs/contracts.md.
#
#   hack/images.sh          build them all
#   hack/images.sh bases    print the base image each Dockerfile would get, build nothing
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/hack/lib.sh"
cd "$ROOT"

CACHE="$(scalestage_cache)/images"
MIRROR="${SCALESTAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
export DOCKER_BUILDKIT=0   # the legacy builder: no buildx plugin needed
mkdir -p "$CACHE"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Online or offline: the official debian:bookworm-slim present or pulled, or not.
DEBIAN_SLIM=$(registry_image debian:bookworm-slim)
bases=unknown
[[ "${SCALESTAGE_OFFLINE:-}" == 1 ]] || bases=$(image_availability "$DEBIAN_SLIM" pull)
plan=$(setup_plan plan --for images --offline "${SCALESTAGE_OFFLINE:-}" --bases "$bases") \
  || die "images: cannot pull $DEBIAN_SLIM (SCALESTAGE_OFFLINE=0)"
eval "$plan"
if [[ $PLAN_BASES == official ]]; then SCALESTAGE_OFFLINE=0; else SCALESTAGE_OFFLINE=1; fi

# slim_rootfs DIR: make a debootstrap rootfs a container base (what the official debian:*-slim images
# do, after debuerreotype's slimify): no service starts during apt installs; apt installs no
# recommends and keeps no package lists' binary caches nor downloaded .debs in any image layer; dpkg
# installs no docs (copyrights stay), man/info pages or translations (nothing here reads them: the
# servers run in the C locale: operator/scalestage/templates/postgres-primary.sh), and the ones the minbase already
# has are deleted. debian_base keys its cached tarball and image by a hash of this function, so a
# changed rule makes a new base instead of reusing the old one.
slim_rootfs() {
  local rootfs=$1
  printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"; chmod +x "$rootfs/usr/sbin/policy-rc.d"
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" > "$rootfs/etc/apt/sources.list"
  cat > "$rootfs/etc/apt/apt.conf.d/90scalestage" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/90scalestage-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$rootfs/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
  find "$rootfs/usr/share/doc" "$rootfs/usr/share/locale" -mindepth 1 -depth -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/log/apt/* \
    "$rootfs"/var/log/{alternatives,bootstrap,dpkg}.log
}

# debian_base: scalestage/debian-base from debootstrap (offline) or debian:bookworm-slim (online).
debian_base() {
  local tag=scalestage/debian-base:$SUITE
  if [[ $SCALESTAGE_OFFLINE == 0 ]]; then
    docker tag "$DEBIAN_SLIM" "$tag"; return
  fi
  local key label=dev.scalestage.debian-base
  key="$( { declare -f slim_rootfs; echo "$MIRROR $SUITE"; } | sha256sum | cut -c1-12)"
  if [[ "$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$tag" 2>/dev/null)" == "$key" ]]; then
    log "images: $tag present"; return
  fi
  # debootstrap's output as it comes (the slow, networked step), then the slimmed tarball of it
  local raw="$CACHE/debian-$SUITE-minbase.tar" tarball="$CACHE/debian-$SUITE-slim-$key.tar" rootfs
  if [[ ! -f "$raw" ]]; then
    apt_install debootstrap
    log "images: debootstrap $SUITE (about a minute)"
    rootfs="$(mktemp -d)"
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >/dev/null
    tar -C "$rootfs" -cf "$raw.tmp" . && mv "$raw.tmp" "$raw"
    rm -rf "$rootfs"
  fi
  if [[ ! -f "$tarball" ]]; then
    rm -f "$CACHE/debian-$SUITE-slim-"*.tar   # made by older rules
    rootfs="$(mktemp -d)"
    tar -C "$rootfs" -xf "$raw"
    slim_rootfs "$rootfs"
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  docker import --change "LABEL $label=$key" "$tarball" "$tag" >/dev/null
  log "images: $tag imported (slim rules $key)"
}

# build TAG DIR BASE [EXTRA docker build args...]
build() {
  local tag=$1 dir=$2 base=$3; shift 3
  local started=$SECONDS
  local output
  output="$(docker build --build-arg "BASE_IMAGE=$base" -t "$tag" "$@" "$dir" 2>&1)" || {
    echo "$output" | tail -30 >&2
    die "images: building $tag from $dir failed"
  }
  log "images: $tag ready ($((SECONDS - started)) s)"
}

# base_for OFFICIAL: the official image online (as the registry names it), our Debian base offline.
base_for() {
  if [[ $SCALESTAGE_OFFLINE == 0 ]]; then registry_image "$1"; else echo "scalestage/debian-base:$SUITE"; fi
}

# the official image each of images/* is written against
declare -A OFFICIAL=([python-base]=python:3.11-slim [postgres]=postgres:15 [redis]=redis:7 [edge]=nginx:1)

if [[ ${1:-} == bases ]]; then
  echo "debian-base ${PLAN_BASES}: $([[ $SCALESTAGE_OFFLINE == 0 ]] && echo "$DEBIAN_SLIM" || echo debootstrap)"
  for dir in python-base postgres redis edge; do echo "$dir $(base_for "${OFFICIAL[$dir]}")"; done
  exit 0
fi

# wheelhouse DIR: fill DIR/wheels with the project's wheels, from the cache when its pyproject.toml
# and build-wheels.sh have not changed (a fresh clone would otherwise download them every time).
wheelhouse() {
  local dir=$1 key cached
  key=$(cat "$dir/pyproject.toml" "$dir/build-wheels.sh" | sha256sum | cut -c1-16)
  cached="$CACHE/wheels/$(basename "$dir")-$key"
  if [[ ! -d "$cached" ]]; then
    rm -rf "$dir/wheels"
    "$dir/build-wheels.sh" >/dev/null
    mkdir -p "$CACHE/wheels" && rm -rf "$cached.tmp" && cp -a "$dir/wheels" "$cached.tmp" && mv "$cached.tmp" "$cached"
  elif ! diff -rq "$cached" "$dir/wheels" >/dev/null 2>&1; then
    rm -rf "$dir/wheels" && cp -a "$cached" "$dir/wheels"
  fi
}

started=$SECONDS
log "images: building $( [[ $SCALESTAGE_OFFLINE == 1 ]] && echo 'offline, from Debian packages' || echo 'from official images')"
debian_base
build scalestage/python-base:3.11 images/python-base "$(base_for "${OFFICIAL[python-base]}")"
build scalestage/postgres:15 images/postgres "$(base_for "${OFFICIAL[postgres]}")"
build scalestage/redis:7 images/redis "$(base_for "${OFFICIAL[redis]}")"
build scalestage/edge:1 images/edge "$(base_for "${OFFICIAL[edge]}")"
# The Python projects install from a wheelhouse filled on the host (pip reaches PyPI here, the
# build container may not), so the same Dockerfile works air-gapped.
for project in services/chirp:scalestage/chirp:dev operator:scalestage/operator:dev; do
  dir=${project%%:*} tag=${project#*:}
  [[ -f "$dir/Dockerfile" ]] || continue
  wheelhouse "$dir"
  build "$tag" "$dir" scalestage/python-base:3.11
done
log "images: all ready in $((SECONDS - started)) s"
