#!/usr/bin/env bash
# make tilt: build the pinned Tilt (TILT_VERSION in tools/versions.env), web UI included, from the Go
# module proxy and the npm registry only, into a cache outside the checkout; link it into .tools/bin.
#
#   cache:  ${SCALESTAGE_CACHE:-~/.cache/scalestage}/tools/tilt-<version>/tilt     (keyed by version)
#   work:   .../tools/src/tilt-<version>/{tilt,wrapper}  module copy with the built UI, wrapper module
#           .../go-build  .../yarn                         Go build cache, yarn package cache
#   links:  .tools/bin/tilt
#
# Why not `go install github.com/tilt-dev/tilt/cmd/tilt@v…`: tilt's go.mod has `replace` lines, and
# the module zip carries no built web UI (pkg/assets embeds pkg/assets/build, which holds only
# robots.txt) — a binary without it refuses to start. So: copy the module source out of the module
# cache, build web/ with the yarn release vendored in it, put the bundle into pkg/assets/build, and
# build cmd/tilt from a small wrapper module. docs/tilt.md has the details.
#
# Idempotent: a complete cache folder is only re-linked; an interrupted build resumes with what it
# has (the UI bundle and the wrapper's go.sum are kept between runs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../tools/versions.env
source "$ROOT/tools/versions.env"
source "$ROOT/hack/lib.sh"

VERSION="${TILT_VERSION:?TILT_VERSION is not set in tools/versions.env}"
CACHE_ROOT="$(scalestage_cache)"
OUT="$CACHE_ROOT/tools/tilt-$VERSION"
SRC="$CACHE_ROOT/tools/src/tilt-$VERSION"
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"

if [[ -f "$OUT/.complete" && -x "$OUT/tilt" ]]; then
  ln -sfn "$OUT/tilt" "$BIN/tilt"
  log "tilt: $VERSION present"
  exit 0
fi

# --- prerequisites: Go >= the version tilt's go.mod asks for (checked below), Node >= 20 for the UI.
command -v go >/dev/null || die "Go is required to build Tilt (Tilt $VERSION needs Go >= 1.26)"
node_major() { node -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null; then
  apt_install nodejs   # Debian 12's nodejs is 18; the UI build was measured with Node 20
fi
(( $(node_major) >= 18 )) || die "Node.js >= 18 (20 recommended) is required to build Tilt's web UI"
(( $(node_major) >= 20 )) || warn "tilt: Node.js $(node -v) found; the UI build was only tried with Node 20"

# cgo: tilt's Tiltfile language server links tree-sitter (C), so a C compiler is needed.
command -v gcc >/dev/null || apt_install gcc libc6-dev
export CGO_ENABLED=1 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
export GOCACHE="${SCALESTAGE_GOCACHE:-$CACHE_ROOT/go-build}"
mkdir -p "$GOCACHE" "$SRC"

started=$SECONDS
log "tilt: building $VERSION (cold: ~5 min for the UI, ~10-15 min for Go on 2 cores) ..."

# --- 1. a writable copy of the module source ---------------------------------------------------
if [[ ! -f "$SRC/tilt/.copied" ]]; then
  moddir="$(go mod download -json "github.com/tilt-dev/tilt@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [[ -d "$moddir" ]] || die "go mod download github.com/tilt-dev/tilt@$VERSION gave no source (is this version served by the proxy?)"
  want_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$moddir/go.mod")"
  have_go="$(go env GOVERSION)"; have_go="${have_go#go}"
  if [[ "$(printf '%s\n%s\n' "$want_go" "$have_go" | sort -V | head -1)" != "$want_go" ]]; then
    die "Tilt $VERSION needs Go >= $want_go (have $have_go)"
  fi
  rm -rf "$SRC/tilt"
  cp -a "$moddir" "$SRC/tilt"
  chmod -R u+w "$SRC/tilt"   # the module cache is read-only
  touch "$SRC/tilt/.copied"
fi

# --- 2. the web UI, built with the yarn release vendored in web/.yarn/releases -------------------
if [[ ! -f "$SRC/tilt/web/build/index.html" ]]; then
  releases=("$SRC"/tilt/web/.yarn/releases/yarn-*.cjs)
  yarn_cjs="${releases[0]}"
  [[ -f "$yarn_cjs" ]] || die "no vendored yarn in $SRC/tilt/web/.yarn/releases"
  registry="$(npm config get registry 2>/dev/null || true)"
  (
    cd "$SRC/tilt/web"
    export YARN_NPM_REGISTRY_SERVER="${registry:-https://registry.npmjs.org/}"
    export YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_GLOBAL_CACHE=false YARN_CACHE_FOLDER="$CACHE_ROOT/yarn"
    export YARN_ENABLE_PROGRESS_BARS=false YARN_ENABLE_INLINE_BUILDS=false
    export GENERATE_SOURCEMAP=false BROWSER=none CI=true
    t=$SECONDS
    with_heartbeat "tilt: installing the UI's npm packages" node "$yarn_cjs" install --immutable
    log "tilt: yarn install $((SECONDS - t)) s"
    t=$SECONDS
    with_heartbeat "tilt: building the UI" node "$yarn_cjs" build
    log "tilt: yarn build $((SECONDS - t)) s"
  )
  [[ -f "$SRC/tilt/web/build/index.html" ]] || die "the UI build left no web/build/index.html"
fi
cp -a "$SRC/tilt/web/build/." "$SRC/tilt/pkg/assets/build/"

# --- 3. a wrapper module that requires tilt (go install cannot honour tilt's replace lines) ------
W="$SRC/wrapper"
mkdir -p "$W"
if [[ ! -f "$W/.tidy" ]]; then
  {
    echo "module scalestage.dev/tools/tilt"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\).*/\1/p' "$SRC/tilt/go.mod")"
    echo
    echo "require github.com/tilt-dev/tilt $VERSION"
    echo
    echo "replace github.com/tilt-dev/tilt => ../tilt"
    echo
    # tilt's own replace lines (single-line and block form, comments dropped)
    awk '/^replace \(/{b=1;next} b&&/^\)/{b=0;next} b&&/=>/{print "replace " $0;next} /^replace .*=>/{print}' \
      "$SRC/tilt/go.mod" | sed -e 's#[[:space:]]*//.*##' -e 's/^replace[[:space:]]*/replace /'
  } > "$W/go.mod"
  cat > "$W/tools.go" <<'GO'
//go:build tools

// Package tools pins Tilt's command for the wrapper module (see hack/tilt.sh).
package tools

import _ "github.com/tilt-dev/tilt/cmd/tilt"
GO
  # Seed go.sum from tilt's: the checksum database does not know some of tilt's pseudo-versions
  # (e.g. github.com/tilt-dev/starlark-lsp). A line whose hash differs from what the proxy serves
  # (github.com/docker/buildx v0.32.1 for v0.37.6) makes `go mod tidy` stop with SECURITY ERROR:
  # drop such lines and let the proxy + checksum database answer for them.
  cp "$SRC/tilt/go.sum" "$W/go.sum"
  for attempt in 1 2 3 4 5 6; do
    if out="$(cd "$W" && go mod tidy 2>&1)"; then break; fi
    bad="$(echo "$out" | sed -n 's/.*verifying \([^ ]*\)@\([^ :]*\): checksum mismatch.*/\1 \2/p' | head -1)"
    if [[ -z "$bad" || $attempt == 6 ]]; then echo "$out" >&2; die "go mod tidy failed in $W"; fi
    read -r mod ver <<<"$bad"
    ver="${ver%/go.mod}"
    warn "tilt: go.sum: dropping tilt's hash for $mod $ver (the proxy serves other content)"
    grep -vF "$mod $ver" "$W/go.sum" > "$W/go.sum.new" && mv "$W/go.sum.new" "$W/go.sum"
  done
  touch "$W/.tidy"
fi

# --- 4. the binary: the version ldflag makes it a release build that serves the embedded UI -----
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
t=$SECONDS
(
  cd "$W"
  with_heartbeat "tilt: compiling tilt" go build -trimpath -tags=osusergo \
    -ldflags "-s -w -X main.version=${VERSION#v} -X main.date=$(date -u +%Y-%m-%d)" \
    -o "$OUT.tmp/tilt" github.com/tilt-dev/tilt/cmd/tilt
)
log "tilt: go build $((SECONDS - t)) s"
"$OUT.tmp/tilt" version | grep -q "${VERSION}" || die "the built tilt does not report $VERSION: $("$OUT.tmp/tilt" version)"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT" && touch "$OUT/.complete"
ln -sfn "$OUT/tilt" "$BIN/tilt"
log "tilt: built $("$OUT/tilt" version) in $((SECONDS - started)) s -> .tools/bin/tilt"
