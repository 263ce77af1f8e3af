#!/usr/bin/env bash
# make up: every phase of the main job in order, each announced with the time so far, and a
# summary of how long each took at the end, so a newcomer knows what they are waiting for.
# The phases are the Makefile's own targets; a phase that is already done takes a second or two.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/hack/lib.sh"
cd "$ROOT"

# phase target: what it is for (shown while it runs)
PHASES=(
  "deps:Debian packages (Postgres, Redis, debootstrap, ...)"
  "venv:Python virtualenv with the app, the operator and the test tools"
  "tools:pinned kind, helm, kubectl (offline also the Kubernetes components; built once, cached)"
  "images:the scalestage/* images (from Debian packages when no registry answers)"
  "cluster:the kind cluster (offline node image, 1 control plane + 2 workers)"
  "operator-install:the images loaded into the nodes, the operator installed by helm"
  "up-instance:ScaleStage chirp (stage 1 if new) until it reports Ready"
)

# the tools phase builds what `make up` needs (hack/setup_plan.py), not all `make tools` knows
export TOOLS_FOR=up
started=$SECONDS
timings=()
for phase in "${PHASES[@]}"; do
  target=${phase%%:*} what=${phase#*:}
  printf '\n\033[1m[%s] %s — %s\033[0m\n' "$(clock $((SECONDS - started)))" "$target" "$what" >&2
  phase_started=$SECONDS
  make --no-print-directory "$target"
  timings+=("$target:$((SECONDS - phase_started))")
done

printf '\n\033[1mmake up finished in %s\033[0m\n' "$(clock $((SECONDS - started)))" >&2
for timing in "${timings[@]}"; do
  printf '  %-18s %s\n' "${timing%%:*}" "$(clock "${timing#*:}")" >&2
done
printf '\nChirp: http://localhost:8080   architecture: http://localhost:8080/architecture\n' >&2
