#!/usr/bin/env bash
# make venv: one virtualenv (.venv) with both projects installed editable plus the test tools.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/hack/lib.sh"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || die "Python 3.11+ is required (found $("$PYTHON" --version 2>&1))"
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
log "venv: installing the projects and test tools into .venv"
projects=(-e services/chirp -e "operator[bench]")
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt "${projects[@]}"
touch .venv/.installed
