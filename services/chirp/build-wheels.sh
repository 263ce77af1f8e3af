#!/usr/bin/env bash
# Fill services/chirp/wheels/ with every wheel the image needs (chirp's pinned dependencies and the
# build backend), downloaded on the host, so `docker build` installs with --no-index (offline).
# The image's Python is Debian 12's 3.11.2 (the oldest 3.11 we serve: its markers pull in the most) on x86_64/aarch64 glibc: fetch wheels for exactly that.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PIP="${PIP:-python3 -m pip}"
ARCH="$(uname -m)"
case "$ARCH" in
  x86_64|aarch64) PLATFORM="manylinux2014_${ARCH}" ;;
  *) echo "build-wheels.sh: unsupported architecture $ARCH" >&2; exit 1 ;;
esac
mkdir -p "$HERE/wheels"
# Dependencies as pinned in pyproject.toml (read with tomllib: one source of truth).
mapfile -t DEPS < <(python3 - "$HERE/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
for dep in project["project"]["dependencies"] + project["build-system"]["requires"]:
    print(dep)
PY
)
# pip evaluates python_full_version markers against the host's interpreter, not --python-version:
# name what Debian's 3.11.2 needs and a newer host would skip (redis: python_full_version < 3.11.3).
MARKER_DEPS=("async-timeout>=4.0.3")
# Binary wheels for the image's interpreter; a pure-Python sdist-only package would be built here.
$PIP download --quiet --disable-pip-version-check --dest "$HERE/wheels" \
  --only-binary=:all: --python-version 3.11.2 --implementation cp --abi cp311 \
  --platform "$PLATFORM" --platform "manylinux_2_28_${ARCH}" --platform "manylinux_2_17_${ARCH}" \
  "${DEPS[@]}" setuptools wheel pip "${MARKER_DEPS[@]}"
echo "build-wheels.sh: $(ls "$HERE/wheels" | wc -l) wheels in $HERE/wheels"
