#!/usr/bin/env bash
# make images: every image the project runs, tagged scalestage/*. Each Dockerfile takes its base
# image as BASE_IMAGE: online the official upstream images, offline (SCALESTAGE_OFFLINE=1, or when
# no registry answers) our own Debian base made with debootstrap. See docs/contracts.md.
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

registry_answers() {
  image_exists debian:bookworm-slim && return 0
  timeout 60 docker pull -q debian:bookworm-slim >/dev/null 2>&1
}

if [[ -z "${SCALESTAGE_OFFLINE:-}" ]]; then
  if registry_answers; then SCALESTAGE_OFFLINE=0; else SCALESTAGE_OFFLINE=1; fi
fi

# debian_base: scalestage/debian-base from debootstrap (offline) or debian:bookworm-slim (online).
debian_base() {
  local tag=scalestage/debian-base:$SUITE
  if [[ $SCALESTAGE_OFFLINE == 0 ]]; then
    docker tag debian:bookworm-slim "$tag"; return
  fi
  image_exists "$tag" && { log "images: $tag present"; return; }
  local tarball="$CACHE/debian-$SUITE-minbase.tar"
  if [[ ! -f "$tarball" ]]; then
    apt_install debootstrap
    log "images: debootstrap $SUITE (about a minute)"
    local rootfs; rootfs="$(mktemp -d)"
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >/dev/null
    # what the official debian image also does: no service starts during apt installs, no docs
    printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"; chmod +x "$rootfs/usr/sbin/policy-rc.d"
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
      "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" > "$rootfs/etc/apt/sources.list"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$rootfs/etc/apt/apt.conf.d/90scalestage"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  docker import "$tarball" "$tag" >/dev/null
  log "images: $tag imported"
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

# base_for OFFICIAL: the official image online, our Debian base offline.
base_for() { if [[ $SCALESTAGE_OFFLINE == 0 ]]; then echo "$1"; else echo "scalestage/debian-base:$SUITE"; fi; }

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
build scalestage/python-base:3.11 images/python-base "$(base_for python:3.11-slim)"
build scalestage/postgres:15 images/postgres "$(base_for postgres:15)"
build scalestage/redis:7 images/redis "$(base_for redis:7)"
build scalestage/edge:1 images/edge "$(base_for nginx:1)"
# The Python projects install from a wheelhouse filled on the host (pip reaches PyPI here, the
# build container may not), so the same Dockerfile works air-gapped.
for project in services/chirp:scalestage/chirp:dev operator:scalestage/operator:dev; do
  dir=${project%%:*} tag=${project#*:}
  [[ -f "$dir/Dockerfile" ]] || continue
  wheelhouse "$dir"
  build "$tag" "$dir" scalestage/python-base:3.11
done
log "images: all ready in $((SECONDS - started)) s"
