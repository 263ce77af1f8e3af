#!/usr/bin/env bash
# Fill operator/wheels/ with the operator's wheel and every dependency, so `docker build` of
# operator/Dockerfile installs with --no-index (no network inside the build).
# The wheels must match the image's Python (3.11): set PYTHON to a 3.11 interpreter if needed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "build-wheels.sh: needs Python 3.11 (the image's); set PYTHON" >&2; exit 1; }
rm -rf "$HERE/wheels"
mkdir -p "$HERE/wheels"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$HERE/wheels" "$HERE"
echo "build-wheels.sh: $(ls "$HERE/wheels" | wc -l) wheels in $HERE/wheels"
