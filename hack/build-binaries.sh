#!/usr/bin/env bash
# Builds the local cluster's binaries from the Go module proxy: etcd, kube-apiserver,
# kube-controller-manager, kube-proxy, kubectl, helm and CoreDNS; and, on request,
# promtool and kube-score for `make lint`.
# Versions are pinned in hack/build/*/go.mod.
#
# Binaries go to a cache outside the repository and are rebuilt only when a pinned
# version (any go.mod, go.sum or main.go under hack/build) changes. The lint tools have
# stamps of their own: a cluster build never waits for them, and bumping one rebuilds
# nothing else.
# Go's module and build caches are reused, so a rebuild after a version bump recompiles
# only what moved.
#
#   hack/build-binaries.sh              build the cluster binaries if needed, print the directory
#   hack/build-binaries.sh --print-dir  print the directory only (no build)
#   hack/build-binaries.sh promtool     build promtool if needed, print its path
#   hack/build-binaries.sh kube-score   build kube-score if needed, print its path
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build="$here/build"
version_of() { awk -v m="$1" '{for (i = 1; i < NF; i++) if ($i == m && $(i+1) ~ /^v/) {print $(i+1); exit}}' "$2"; }

k8s_version=$(version_of k8s.io/kubernetes "$build/kube/go.mod")
etcd_version=$(version_of go.etcd.io/etcd/server/v3 "$build/etcd/go.mod")
helm_version=$(version_of helm.sh/helm/v3 "$build/helm/go.mod")
coredns_version=$(version_of github.com/coredns/coredns "$build/coredns/go.mod")
promtool_version=$(version_of github.com/prometheus/prometheus "$build/promtool/go.mod")
kube_score_version=$(version_of github.com/zegl/kube-score "$build/kube-score/go.mod")
out=${AGENTRY_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentry/bin/$k8s_version}

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$out"
  exit 0
fi

# A digest of the pinned sources under hack/build; `find` arguments pick the part.
stamp_of() { (cd "$build" && find "$@" | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16); }
sources=(\( -name go.mod -o -name go.sum -o -name '*.go' \) -print)

command -v go >/dev/null || need_go=1
# A lint tool: built only when asked, with a stamp of its own (its go.mod and go.sum plus
# the tags), so a cluster build never waits for it and bumping it rebuilds nothing else.
#   build_tool NAME PACKAGE TAGS LDFLAGS MINUTES
build_tool() {
  local name=$1 package=$2 tags=$3 ldflags=$4 minutes=$5 stamp
  stamp="$(stamp_of "./$name" "${sources[@]}")-$tags"
  if [[ -x "$out/$name" && -f "$out/.stamp-$name" && "$(cat "$out/.stamp-$name")" == "$stamp" ]]; then
    echo "$out/$name"
    return
  fi
  [[ -z "${need_go:-}" ]] || { echo "error: Go is needed to build $name (https://go.dev/dl)" >&2; exit 1; }
  mkdir -p "$out"
  echo "building $name (first build: about $minutes on 2 cores)" >&2
  (cd "$build/$name" && GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -trimpath" go build -tags "$tags" \
    -ldflags "-s -w $ldflags" -o "$out/$name" "$package")
  echo "$stamp" > "$out/.stamp-$name"
  echo "$out/$name"
}
case "${1:-}" in
  promtool)
    # remove_all_sd leaves out Prometheus' service discovery plugins (cloud SDKs, most of
    # the module graph), which `promtool check rules` never uses: a quarter of the build.
    build_tool promtool github.com/prometheus/prometheus/cmd/promtool remove_all_sd \
      "-X github.com/prometheus/common/version.Version=$promtool_version" "4 minutes"
    exit 0 ;;
  kube-score)
    # A small module graph (k8s.io/api and apimachinery, no client): about a minute cold.
    build_tool kube-score github.com/zegl/kube-score/cmd/kube-score "" \
      "-X main.version=$kube_score_version" "a minute"
    exit 0 ;;
esac

stamp=$(stamp_of . \( -path ./promtool -o -path ./kube-score \) -prune -o "${sources[@]}")
if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]]; then
  echo "cluster binaries up to date in $out (kubernetes $k8s_version, etcd $etcd_version, helm $helm_version, coredns $coredns_version)" >&2
  echo "$out"
  exit 0
fi

[[ -z "${need_go:-}" ]] || { echo "error: Go is needed to build the local cluster (https://go.dev/dl)" >&2; exit 1; }
mkdir -p "$out"
export GOFLAGS="${GOFLAGS:-} -trimpath" GOTOOLCHAIN=local
started=$SECONDS
step() { printf '[%4ds] %s\n' $((SECONDS - started)) "$*" >&2; }

minor=${k8s_version#v1.}; minor=${minor%%.*}
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kv="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1"
kv="$kv -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
kv="$kv -X k8s.io/component-base/version.buildDate=$date"
kv="$kv -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1"
kv="$kv -X k8s.io/client-go/pkg/version.gitMinor=$minor"

# The module downloads (about 1 GB on an empty cache) wait on the network, not the CPU:
# fetch every part's modules at once in the background, the lint tools' too, while the
# builds below compile what has arrived (Go's module cache takes concurrent writers).
prefetch() { (cd "$build/$1" && go list -deps -tags "${3:-}" "$2" >/dev/null 2>&1) || true; }
prefetch etcd . & prefetch helm helm.sh/helm/v3/cmd/helm & prefetch kube ./cmd/... &
prefetch coredns . & prefetch kube-score github.com/zegl/kube-score/cmd/kube-score &
prefetch promtool github.com/prometheus/prometheus/cmd/promtool remove_all_sd &

step "building etcd $etcd_version (first build: a few minutes)"
(cd "$build/etcd" && go build -ldflags "-s -w" -o "$out/etcd" .)
step "building helm $helm_version (first build: a few minutes)"
(cd "$build/helm" && go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" -o "$out/helm" helm.sh/helm/v3/cmd/helm)
step "building kube-apiserver, kube-controller-manager, kube-proxy, kubectl $k8s_version (first build: about 10 minutes on 2 cores)"
(cd "$build/kube" && go build -ldflags "-s -w $kv" -o "$out/" ./cmd/...)
# hack/build/coredns/main.go imports only the plugins the cluster's Corefile uses.
step "building coredns $coredns_version (first build: about 2 minutes on 2 cores)"
(cd "$build/coredns" && go build -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns_version" -o "$out/coredns" .)
wait  # the lint tools' prefetch, if it is still going
echo "$stamp" > "$out/.stamp"
step "done: binaries in $out"
echo "$out"
