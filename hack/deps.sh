#!/usr/bin/env bash
# make deps: the Debian packages the tests and image builds need. Idempotent; skips what is present.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/hack/lib.sh"
if ! command -v dpkg-query >/dev/null; then
  warn "deps: not a Debian-like system; install postgresql, redis-server, openssl, debootstrap yourself"
  exit 0
fi
# postgresql + redis-server: real services for the services tier (started by the test fixtures,
# never as system services); openssl: control-plane certificates; debootstrap: offline base image;
# nginx + shellcheck: the unit tier checks the rendered nginx config (`nginx -t`) and start scripts;
# chromium + chromium-driver: the e2e tier looks at the architecture page in a real browser.
apt_install postgresql redis-server openssl debootstrap python3-venv ca-certificates curl iproute2 procps \
  nginx shellcheck chromium chromium-driver
# Debian starts the packaged services on install; the tests run their own instances instead.
for svc in postgresql redis-server nginx; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    as_root service "$svc" stop >/dev/null 2>&1 || true
  fi
done
exit 0
