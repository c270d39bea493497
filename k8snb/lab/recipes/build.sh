#!/usr/bin/env bash
# Build the lab's Kubernetes binaries from source through the Go module proxy, once per version.
#
# Output: $K8SNB_CACHE/<K8S_VERSION>/bin/{kube-apiserver,...,etcd,kwok} plus SHA256SUMS; on request
# also containerd, containerd-shim-runc-v2 and coredns.
# Idempotent: a binary already present and matching SHA256SUMS is not rebuilt.
#
# `go install k8s.io/kubernetes/cmd/...@v1.37.2` is refused because that module's go.mod replaces
# its staging modules with local paths. A small wrapper module that requires k8s.io/kubernetes and
# maps each staging module to its published v0.X release builds the same code. etcd's server/v3
# module carries replace directives too, so it gets its own wrapper; kwok builds directly.
#
# Real nodes (`k8snb lab up --nodes real`) also need `containerd` (the daemon and its runc shim:
# Debian's containerd 1.6 lacks the CRI calls kubelet 1.37 makes) and `coredns` (the cluster DNS
# image's binary). They are not built by default: name them, e.g. `recipes/build.sh containerd coredns`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
requested=${K8S_VERSION:-}
# shellcheck source=versions.env
. "$here/versions.env"
if [ -n "$requested" ] && [ "$requested" != "$K8S_VERSION" ]; then
  # Another Kubernetes release than the pin: derive its staging and etcd versions from it.
  K8S_VERSION=$requested
  STAGING_VERSION=v0.${K8S_VERSION#v1.}
  ETCD_VERSION=
fi

cache=${K8SNB_CACHE:-$HOME/.cache/k8snb}
out="$cache/$K8S_VERSION/bin"
work="$cache/$K8S_VERSION/src"
mkdir -p "$out" "$work"

command -v go >/dev/null || { echo "k8snb lab build: Go is not installed (need Go >= 1.26 to build Kubernetes $K8S_VERSION from source)" >&2; exit 2; }

KUBE_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${KUBE_COMPONENTS[@]}" etcd kwok)

export CGO_ENABLED=0 GOFLAGS=-mod=mod
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

have() {  # have NAME: the binary exists and matches its recorded checksum
  [ -x "$out/$1" ] && [ -f "$out/SHA256SUMS" ] && grep -q " $1\$" "$out/SHA256SUMS" &&
    (cd "$out" && grep " $1\$" SHA256SUMS | sha256sum --quiet -c - >/dev/null 2>&1)
}

record() {  # record NAME: store the binary's checksum
  touch "$out/SHA256SUMS"
  grep -v " $1\$" "$out/SHA256SUMS" > "$out/SHA256SUMS.new" || true
  (cd "$out" && sha256sum "$1") >> "$out/SHA256SUMS.new"
  mv "$out/SHA256SUMS.new" "$out/SHA256SUMS"
}

wrapper_module() {  # wrapper_module DIR MODULE VERSION: a module that only requires MODULE@VERSION
  mkdir -p "$1"
  printf 'module k8snb.local/%s-build\n\ngo 1.26.0\n\nrequire %s %s\n' "$(basename "$1")" "$2" "$3" > "$1/go.mod"
}

kube_module() {
  local dir="$work/kubernetes"
  mkdir -p "$dir"
  [ -f "$dir/go.mod" ] && return
  curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$K8S_VERSION.mod" -o "$dir/upstream.mod"
  {
    echo "module k8snb.local/kubernetes-build"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$dir/upstream.mod" | awk '/=>/ {print "\t" $1 " => " $1 " '"$STAGING_VERSION"'"}'
    echo ")"
  } > "$dir/go.mod.new"
  mv "$dir/go.mod.new" "$dir/go.mod"
}

ldflags_kube() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local x
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  echo "-s -w$x"
}

build_kube() {
  kube_module
  (cd "$work/kubernetes" && go build -trimpath -ldflags "$(ldflags_kube)" -o "$out/$1.tmp" "k8s.io/kubernetes/cmd/$1")
}

build_etcd() {
  if [ -z "$ETCD_VERSION" ]; then
    kube_module
    ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$work/kubernetes/upstream.mod")
  fi
  local dir="$work/etcd"
  wrapper_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
}

build_containerd() {
  local dir="$work/containerd"
  wrapper_module "$dir" github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"
  # btrfs and devmapper snapshotters need cgo; the lab uses overlayfs.
  local flags=(-trimpath -tags "no_btrfs no_devmapper no_zfs"
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION")
  (cd "$dir" && go build "${flags[@]}" -o "$out/containerd.tmp" github.com/containerd/containerd/v2/cmd/containerd &&
    go build "${flags[@]}" -o "$out/containerd-shim-runc-v2.tmp" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2)
}

build_coredns() {
  local dir="$work/coredns"
  wrapper_module "$dir" github.com/coredns/coredns "$COREDNS_VERSION"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" github.com/coredns/coredns)
}

outputs() {  # outputs NAME: the binaries one component produces
  case "$1" in
    containerd) echo containerd containerd-shim-runc-v2 ;;
    *) echo "$1" ;;
  esac
}

build_kwok() {
  local dir="$work/kwok"
  wrapper_module "$dir" sigs.k8s.io/kwok "$KWOK_VERSION"
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$out/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok)
}

for name in "${wanted[@]}"; do
  cached=1
  for o in $(outputs "$name"); do have "$o" || cached=0; done
  if [ $cached = 1 ]; then echo "k8snb lab build: $name $K8S_VERSION cached"; continue; fi
  start=$(date +%s)
  echo "k8snb lab build: building $name ..."
  case "$name" in
    etcd) build_etcd ;;
    kwok) build_kwok ;;
    containerd) build_containerd ;;
    coredns) build_coredns ;;
    kube-*|kubectl|kubelet) build_kube "$name" ;;
    *) echo "k8snb lab build: unknown component '$name'" >&2; exit 2 ;;
  esac
  for o in $(outputs "$name"); do
    mv "$out/$o.tmp" "$out/$o"
    record "$o"
  done
  took=$(( $(date +%s) - start ))
  echo "k8snb lab build: $name built in ${took}s"
  # Kept for bench/: the cold build is measured once, when it happens, not re-run by the benchmark.
  printf '%s\t%s\t%s\t%s\n' "$name" "$took" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$cache/$K8S_VERSION/build-times.tsv"
done
