#!/usr/bin/env bash
# make up: every phase of the main job, each announced with the time so far, and a summary of how
# long each took at the end, so a newcomer knows what they are waiting for. The phases are the
# Makefile's own targets; a phase that is already done takes a second or two.
#
#   hack/up.sh          every phase, up to ScaleStage chirp Ready
#   hack/up.sh setup    the phases before the cluster only (.ci/run, before `make test`)
#
# The Go builds (tools: CPU-bound) run side by side with the image builds and the virtualenv
# (apt, dpkg, pip: mostly waiting on the network and the disk): on a cold two-core machine that
# hides the images' minutes behind the tools'. Each of those phases writes its output to a log
# file (shown whole when it fails) and its progress lines (`==>`) to the terminal, prefixed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/hack/lib.sh"
cd "$ROOT"

# phase target: what it is for (shown while it runs)
declare -A WHAT=(
  [deps]="Debian packages (Postgres, Redis, debootstrap, ...)"
  [docker]="the Docker engine, started if it is not running"
  [tools]="pinned kind, helm, kubectl (offline also the Kubernetes components and kube-router; built once, cached)"
  [images]="the scalestage/* images (from Debian packages when no registry answers)"
  [node-prepare]="the offline node image's Debian layers and small Go programs, ahead of the tools"
  [venv]="Python virtualenv with the app, the operator and the test tools"
  [cluster]="the kind cluster (offline node image, 1 control plane + 2 workers)"
  [operator-install]="the images loaded into the nodes, the operator installed by helm"
  [up-instance]="ScaleStage chirp (stage 1 if new) until it reports Ready"
)
# The steps in order; a step of several lanes ("tools|images ...") runs its lanes side by side,
# the phases of one lane one after the other.
STEPS=(deps docker "tools|images node-prepare venv")
[[ ${1:-} == setup ]] || STEPS+=(cluster operator-install up-instance)

# the tools phase builds what `make up` needs (hack/setup_plan.py), not all `make tools` knows;
# .ci/run's setup asks for what `make test` needs
export TOOLS_FOR="${TOOLS_FOR:-up}"
LOGS="$(scalestage_cache)/logs"
mkdir -p "$LOGS"
started=$SECONDS
timings=()

# stop_lanes: stop the lanes still running (each is a process group) with everything they started
lane_pids=()
stop_lanes() {
  local p
  for p in "${lane_pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
}
trap 'stop_lanes; exit 130' INT TERM

announce() { printf '\n\033[1m[%s] %s — %s\033[0m\n' "$(clock $((SECONDS - started)))" "$1" "${WHAT[$1]}" >&2; }

# lane PHASE...: the phases one after the other, output to $LOGS/PHASE.log, progress lines
# prefixed with the phase; prints "PHASE SECONDS" per phase done. Stops at the first failure.
lane() {
  local phase t rc
  for phase in "$@"; do
    announce "$phase"
    t=$SECONDS
    set +e
    make --no-print-directory "$phase" 2>&1 | tee "$LOGS/$phase.log" \
      | { grep --line-buffered -F '==>' || true; } | sed -u "s/^/  [$phase] /" >&2
    rc=${PIPESTATUS[0]}
    set -e
    if (( rc != 0 )); then
      printf '\n\033[1;31m%s failed (exit %d); its log, %s:\033[0m\n' "$phase" "$rc" "$LOGS/$phase.log" >&2
      cat "$LOGS/$phase.log" >&2
      return "$rc"
    fi
    printf '\033[1m[%s] %s done in %s\033[0m\n' "$(clock $((SECONDS - started)))" "$phase" "$(clock $((SECONDS - t)))" >&2
    echo "$phase $((SECONDS - t))"
  done
}

# lanes_text LANE...: "tools ‖ images → node-prepare → venv", for the summary
lanes_text() {
  local l text=""
  for l in "$@"; do text+="${text:+ ‖ }${l// / → }"; done
  echo "$text"
}

for step in "${STEPS[@]}"; do
  if [[ $step != *"|"* ]]; then
    announce "$step"
    t=$SECONDS
    make --no-print-directory "$step"
    timings+=("$step:$((SECONDS - t))")
    continue
  fi
  IFS='|' read -ra lanes <<<"$step"
  lane_pids=() outs=()
  step_started=$SECONDS
  for l in "${lanes[@]}"; do
    out=$(mktemp)
    # its own process group (job control), so that a failed lane or Ctrl-C stops every lane
    set -m
    # shellcheck disable=SC2086 # a lane is a list of phases
    lane $l >"$out" </dev/null &
    set +m
    lane_pids+=($!) outs+=("$out")
  done
  failed=0 running=("${lane_pids[@]}")
  while (( ${#running[@]} )); do
    # the first lane to end (only lanes not reaped yet: wait -n on a reaped one is an error)
    if ! wait -n -p ended "${running[@]}"; then failed=1 && stop_lanes && break; fi
    for i in "${!running[@]}"; do [[ ${running[$i]} == "$ended" ]] && unset "running[$i]"; done
  done
  wait || true
  lane_pids=()
  together="side by side: $(lanes_text "${lanes[@]}")"
  (( failed == 0 )) || die "up: a phase failed (its log is above); $together, the others stopped"
  mark="┐"
  for out in "${outs[@]}"; do
    while read -r phase secs; do timings+=("$phase:$secs:$mark") && mark="│"; done <"$out"
    rm -f "$out"
  done
  timings+=("(wall clock):$((SECONDS - step_started)):┘ $together")
done

printf '\n\033[1mmake up%s finished in %s\033[0m\n' "${1:+ $1}" "$(clock $((SECONDS - started)))" >&2
for timing in "${timings[@]}"; do
  IFS=: read -r phase secs note <<<"$timing"
  printf '  %-18s %-12s %s\n' "$phase" "$(clock "$secs")" "${note:-}" >&2
done
[[ ${1:-} == setup ]] || printf '\nChirp: http://localhost:8080   architecture: http://localhost:8080/architecture\n' >&2
