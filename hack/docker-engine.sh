#!/usr/bin/env bash
# make docker: make sure a Docker engine answers. Installs docker.io from Debian when Docker is
# absent, starts dockerd when it is not running, and — only on hosts whose root lacks
# CAP_SYS_RESOURCE (these CI VMs) — registers tools/runc-shim as dockerd's default runtime so
# privileged containers (kind nodes) and negative oom_score_adj work. Harmless where Docker runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/hack/lib.sh"

if docker info >/dev/null 2>&1; then
  log "docker: engine running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  exit 0
fi

command -v dockerd >/dev/null || apt_install docker.io
command -v dockerd >/dev/null || die "no dockerd after installing docker.io"

# CAP_SYS_RESOURCE is capability 24; a bounding set without it needs the runc shim.
lacks_sys_resource() {
  local bnd
  bnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
  (( (16#$bnd >> 24 & 1) == 0 ))
}

# shim_binary: build tools/runc-shim (tiny, static) into the cache once per source change.
shim_binary() {
  local src="$ROOT/tools/runc-shim" key out
  key=$(cat "$src"/go.mod "$src"/main.go | sha256sum | cut -c1-12)
  out="$(scalestage_cache)/bin/runc-shim-$key"
  if [[ ! -x "$out" ]]; then
    mkdir -p "$(dirname "$out")"
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -o "$out.tmp" . && mv "$out.tmp" "$out")
  fi
  echo "$out"
}

args=()
if lacks_sys_resource; then
  shim="$(shim_binary)"
  # a stable path, so node images and containerd configs can name it
  install -m 0755 "$shim" /usr/local/sbin/runc-shim
  log "docker: root lacks CAP_SYS_RESOURCE here; using the runc shim as default runtime"
  args+=(--add-runtime "scalestage-runc=/usr/local/sbin/runc-shim" --default-runtime scalestage-runc)
fi

log "docker: starting dockerd (log: /var/log/scalestage-dockerd.log)"
setsid nohup dockerd "${args[@]}" >/var/log/scalestage-dockerd.log 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "docker: engine running ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
tail -20 /var/log/scalestage-dockerd.log >&2
die "dockerd did not answer within 60 s"
