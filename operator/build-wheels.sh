#!/usr/bin/env bash
# Fill operator/wheels/ with the operator's dependencies and build backend (not the operator
# itself: its source goes into the image by COPY, so a code change always reaches the image while
# the wheelhouse stays cached by pyproject.toml). `docker build` then installs with --no-index.
# The wheels must match the image's Python (3.11): set PYTHON to a 3.11 interpreter if needed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "build-wheels.sh: needs Python 3.11 (the image's); set PYTHON" >&2; exit 1; }
rm -rf "$HERE/wheels"
mkdir -p "$HERE/wheels"
# Dependencies and build requirements as pinned in pyproject.toml (one source of truth).
mapfile -t DEPS < <("$PYTHON" - "$HERE/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
for dep in project["project"]["dependencies"] + project["build-system"]["requires"]:
    print(dep)
PY
)
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$HERE/wheels" \
  "${DEPS[@]}" wheel
echo "build-wheels.sh: $(ls "$HERE/wheels" | wc -l) wheels in $HERE/wheels"
