#!/usr/bin/env bash
# Unit tests of the small Go programs under tools/ (each folder with a go.mod is its own module).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
for mod in "$ROOT"/tools/*/go.mod; do
  (cd "$(dirname "$mod")" && go vet ./... && go test ./...)
done
