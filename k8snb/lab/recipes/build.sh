#!/usr/bin/env bash
# Build the lab's binaries from source through the Go module proxy, once per version.
#
# Output: $K8SNB_CACHE/<K8S_VERSION>/bin/<binary> plus SHA256SUMS. Components: the six Kubernetes
# ones, etcd, kwok (simulated nodes), containerd (its daemon, runc shim and ctr: Debian's containerd
# 1.6 lacks the CRI calls kubelet 1.37 makes) and coredns (the cluster DNS image's binary). For kind
# (`k8snb kind up`): kubeadm, runc, a Docker engine (dockerd, docker-proxy), kind, crictl and the CNI
# reference plugins kind's nodes use. With no arguments: the control plane and kwok. `k8snb lab up`
# and `k8snb kind up` name exactly what they need.
# Idempotent: a binary already present and matching SHA256SUMS is not rebuilt.
#
# `go install k8s.io/kubernetes/cmd/...@v1.37.2` is refused because that module's go.mod replaces
# its staging modules with local paths. A small wrapper module that requires k8s.io/kubernetes and
# maps each staging module to its published v0.X release builds the same code. etcd's server/v3
# module carries replace directives too, so it gets its own wrapper; kwok builds directly. CoreDNS
# is built with only the plugins the lab's Corefile uses (COREDNS_PLUGINS in versions.env): the
# same coremain and plugin code, without the cloud providers' SDKs that make most of its build.
#
# A first build you can watch: one line per component ([i/n], what it is expected to take on 2
# cores), a progress line every 30 s while it compiles, and its time when done. Module downloads
# for the later components run in the background while the earlier ones compile.
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
KUBE_ALL=("${KUBE_COMPONENTS[@]}" kubeadm)
#: Build order (the Kubernetes binaries first, in one go command) and the seconds each takes in a
#: cold build on this project's 2-core machine, for the estimates: measured 2026-11-30 with empty
#: caches, the six Kubernetes binaries together 402-456 s (split here by their share of the work).
#: The kind components' figures: the issue's own measurement for dockerd and runc, estimates for the rest.
ORDER=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kubeadm etcd kwok
  containerd coredns runc dockerd kind crictl cni-plugins)
declare -A EXPECTED=([kube-apiserver]=280 [kube-controller-manager]=60 [kube-scheduler]=10 [kubectl]=30
  [kubelet]=35 [kube-proxy]=15 [kubeadm]=30 [etcd]=20 [kwok]=65 [containerd]=60 [coredns]=45 [runc]=20
  [dockerd]=270 [kind]=40 [crictl]=40 [cni-plugins]=40)
requested_names=("$@")
[ ${#requested_names[@]} -gt 0 ] || requested_names=("${KUBE_COMPONENTS[@]}" etcd kwok)
for name in "${requested_names[@]}"; do
  [ -n "${EXPECTED[$name]:-}" ] || { echo "k8snb lab build: unknown component '$name'" >&2; exit 2; }
done
wanted=()
for name in "${ORDER[@]}"; do
  for r in "${requested_names[@]}"; do [ "$r" = "$name" ] && wanted+=("$name") && break; done
done

export CGO_ENABLED=0 GOFLAGS=-mod=mod
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

have() {  # have NAME: the binary exists and matches its recorded checksum (CoreDNS: and plugins)
  [ "$1" != coredns ] || [ "$(cat "$out/coredns.plugins" 2>/dev/null)" = "$COREDNS_PLUGINS" ] || return 1
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
  curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$K8S_VERSION.mod" -o "$dir/upstream.mod" || return 1
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

build_kube() {  # build_kube NAME...: one go command for all of them, so that one binary's link
  # (single-threaded) overlaps the others' compiles; each lands as $out/NAME.tmp
  local tmp="$out/.kube-build" pkgs=() n
  rm -rf "$tmp" && mkdir -p "$tmp"
  for n in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
  (cd "$work/kubernetes" && go build -trimpath -ldflags "$(ldflags_kube)" -o "$tmp/" "${pkgs[@]}") || return 1
  for n in "$@"; do mv "$tmp/$n" "$out/$n.tmp"; done
  rmdir "$tmp"
}

etcd_module() {
  if [ -z "$ETCD_VERSION" ]; then
    kube_module
    ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$work/kubernetes/upstream.mod")
  fi
  wrapper_module "$work/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
}

build_etcd() {
  local dir="$work/etcd"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
}

build_containerd() {
  local dir="$work/containerd"
  # btrfs and devmapper snapshotters need cgo; the lab uses overlayfs.
  local flags=(-trimpath -tags "no_btrfs no_devmapper no_zfs"
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION")
  (cd "$dir" && go build "${flags[@]}" -o "$out/containerd.tmp" github.com/containerd/containerd/v2/cmd/containerd &&
    go build "${flags[@]}" -o "$out/containerd-shim-runc-v2.tmp" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 &&
    go build "${flags[@]}" -o "$out/ctr.tmp" github.com/containerd/containerd/v2/cmd/ctr)
}

build_runc() {  # cgo and libseccomp, as upstream builds it: Debian's runc 1.1.5 cannot set up the
  # time namespace current engines ask for
  command -v gcc >/dev/null && pkg-config --exists libseccomp ||
    { echo "k8snb lab build: runc needs gcc and libseccomp-dev (apt-get install gcc libseccomp-dev)" >&2; return 1; }
  (cd "$work/runc" && CGO_ENABLED=1 go build -trimpath -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$out/runc.tmp" github.com/opencontainers/runc)
}

build_dockerd() {  # a current Docker engine: Debian's 20.10 cannot start kind's privileged nodes here
  local tmp="$out/.dockerd-build"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$work/dockerd" && go build -trimpath -tags "exclude_graphdriver_btrfs no_btrfs" \
    -ldflags "-s -w -X github.com/moby/moby/v2/dockerversion.Version=${MOBY_VERSION#v}" \
    -o "$tmp/" github.com/moby/moby/v2/cmd/dockerd github.com/moby/moby/v2/cmd/docker-proxy) || return 1
  mv "$tmp/dockerd" "$out/dockerd.tmp" && mv "$tmp/docker-proxy" "$out/docker-proxy.tmp" && rmdir "$tmp"
}

build_kind() {
  (cd "$work/kind" && go build -trimpath -ldflags "-s -w" -o "$out/kind.tmp" sigs.k8s.io/kind)
}

build_crictl() {
  (cd "$work/crictl" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    -o "$out/crictl.tmp" sigs.k8s.io/cri-tools/cmd/crictl)
}

CNI_PLUGINS=(host-local loopback ptp portmap)
build_cni-plugins() {  # the four kind's base image carries
  local tmp="$out/.cni-build" pkgs=(plugins/ipam/host-local plugins/main/loopback plugins/main/ptp plugins/meta/portmap) p
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$work/cni-plugins" && go build -trimpath -ldflags "-s -w" -o "$tmp/" "${pkgs[@]/#/github.com/containernetworking/plugins/}") || return 1
  for p in "${CNI_PLUGINS[@]}"; do mv "$tmp/$p" "$out/cni-$p.tmp"; done
  rmdir "$tmp"
}

coredns_module() {  # CoreDNS's own main, with the lab's plugins in CoreDNS's directive order
  local dir="$work/coredns-lab" imports="" directives="" p
  wrapper_module "$dir" github.com/coredns/coredns "$COREDNS_VERSION"
  IFS=, read -ra plugins <<< "$COREDNS_PLUGINS"
  for p in "${plugins[@]}"; do  # directive[:package], as in CoreDNS's plugin.cfg
    imports+="    _ \"github.com/coredns/coredns/plugin/${p#*:}\""$'\n'
    directives+="\"${p%%:*}\", "
  done
  cat > "$dir/main.go.new" <<GO
// Generated by k8snb's build.sh: CoreDNS $COREDNS_VERSION with the lab's plugins only.
package main

import (
    "github.com/coredns/coredns/core/dnsserver"
    "github.com/coredns/coredns/coremain"
$imports)

func init() { dnsserver.Directives = []string{${directives%, }} }

func main() { coremain.Run() }
GO
  mv "$dir/main.go.new" "$dir/main.go"
}

build_coredns() {
  (cd "$work/coredns-lab" && go build -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" .)
}

outputs() {  # outputs NAME: the binaries one component produces
  case "$1" in
    containerd) echo containerd containerd-shim-runc-v2 ctr ;;
    dockerd) echo dockerd docker-proxy ;;
    cni-plugins) for p in "${CNI_PLUGINS[@]}"; do echo "cni-$p"; done ;;
    *) echo "$1" ;;
  esac
}

build_kwok() {
  local dir="$work/kwok"
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$out/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok)
}


module_of() {  # module_of NAME: the wrapper module directory NAME builds in
  case "$1" in
    kube-*|kubectl|kubelet|kubeadm) echo kubernetes ;;
    coredns) echo coredns-lab ;;
    *) echo "$1" ;;
  esac
}

packages_of() {  # packages_of NAME: the Go packages NAME's build compiles
  case "$1" in
    kube-*|kubectl|kubelet|kubeadm) echo "k8s.io/kubernetes/cmd/$1" ;;
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    containerd) echo github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr ;;
    coredns) echo . ;;
    runc) echo github.com/opencontainers/runc ;;
    dockerd) echo github.com/moby/moby/v2/cmd/dockerd github.com/moby/moby/v2/cmd/docker-proxy ;;
    kind) echo sigs.k8s.io/kind ;;
    crictl) echo sigs.k8s.io/cri-tools/cmd/crictl ;;
    cni-plugins) echo github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/main/loopback github.com/containernetworking/plugins/plugins/main/ptp github.com/containernetworking/plugins/plugins/meta/portmap ;;
  esac
}

write_module() {  # write_module NAME: the wrapper module's go.mod (and main.go for CoreDNS)
  case "$1" in
    kube-*|kubectl|kubelet|kubeadm) kube_module ;;
    etcd) etcd_module ;;
    runc) wrapper_module "$work/runc" github.com/opencontainers/runc "$RUNC_VERSION" ;;
    dockerd) wrapper_module "$work/dockerd" github.com/moby/moby/v2 "$MOBY_VERSION" ;;
    kind) wrapper_module "$work/kind" sigs.k8s.io/kind "$KIND_VERSION" ;;
    crictl) wrapper_module "$work/crictl" sigs.k8s.io/cri-tools "$CRICTL_VERSION" ;;
    cni-plugins) wrapper_module "$work/cni-plugins" github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" ;;
    kwok) wrapper_module "$work/kwok" sigs.k8s.io/kwok "$KWOK_VERSION" ;;
    containerd) wrapper_module "$work/containerd" github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" ;;
    coredns) coredns_module ;;
  esac
}

fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

todo=()
for name in "${wanted[@]}"; do
  cached=1
  for o in $(outputs "$name"); do have "$o" || cached=0; done
  if [ $cached = 1 ]; then echo "k8snb lab build: $name $K8S_VERSION cached"; else todo+=("$name"); fi
done
[ ${#todo[@]} -gt 0 ] || exit 0

# Module downloads, in build order, in the background: while kube-apiserver compiles (CPU), the
# modules of etcd, containerd, CoreDNS ... arrive (network). A module's build waits for its own
# download (one go command per module directory at a time: both may write its go.mod and go.sum).
fetched="$work/.fetched.$$"
mkdir -p "$fetched"
(
  declare -A done_modules=()
  for name in "${todo[@]}"; do
    m=$(module_of "$name")
    if [ -z "${done_modules[$m]:-}" ]; then
      done_modules[$m]=1
      pkgs=()
      for n in "${todo[@]}"; do [ "$(module_of "$n")" = "$m" ] && read -ra p <<< "$(packages_of "$n")" && pkgs+=("${p[@]}"); done
      { write_module "$name" && (cd "$work/$m" && go list -deps "${pkgs[@]}" > /dev/null); } 2> "$fetched/$m.err" &&
        : > "$fetched/$m" || : > "$fetched/$m.failed"
    fi
  done
) &
fetcher=$!
heartbeat=
stop_background() {
  [ -z "$heartbeat" ] || kill "$heartbeat" 2>/dev/null || true
  kill "$fetcher" 2>/dev/null || true
  rm -rf "$fetched"
}
trap stop_background EXIT

wait_fetched() {  # wait_fetched MODULE: until its download is done; fail with go's message
  while [ ! -e "$fetched/$1" ] && [ ! -e "$fetched/$1.failed" ]; do
    kill -0 "$fetcher" 2>/dev/null || { echo "k8snb lab build: the module download stopped" >&2; exit 1; }
    sleep 1
  done
  if [ -e "$fetched/$1.failed" ]; then
    echo "k8snb lab build: downloading the modules of $1 failed:" >&2
    tail -15 "$fetched/$1.err" >&2
    exit 1
  fi
}

# Steps: the Kubernetes binaries in one go command, every other component in its own.
steps=() kube=""
for name in "${todo[@]}"; do
  case "$name" in kube-*|kubectl|kubelet|kubeadm) kube+="${kube:+ }$name" ;; *) steps+=("$name") ;; esac
done
[ -z "$kube" ] || steps=("$kube" "${steps[@]}")

total=0
for name in "${todo[@]}"; do total=$((total + EXPECTED[$name])); done
build_start=$(date +%s)
echo "k8snb lab build: ${#steps[@]} steps to build ${todo[*]} (about $(fmt $total) on 2 cores)"
i=0
for step in "${steps[@]}"; do
  i=$((i + 1))
  read -ra names <<< "$step"
  label=${names[0]} expected=0
  [ ${#names[@]} -eq 1 ] || label="Kubernetes (${step// /, })"
  for name in "${names[@]}"; do expected=$((expected + EXPECTED[$name])); done
  start=$(date +%s)
  echo "k8snb lab build: [$i/${#steps[@]}] $label: downloading modules ..."
  wait_fetched "$(module_of "${names[0]}")"
  echo "k8snb lab build: [$i/${#steps[@]}] $label: compiling (about $(fmt $expected) on 2 cores)"
  (
    while sleep 30; do
      now=$(date +%s)
      echo "k8snb lab build: [$i/${#steps[@]}] ${names[0]}${names[1]:+ ...}: $(fmt $((now - start))) so far (about $(fmt $expected)); whole build $(fmt $((now - build_start)))"
    done
  ) &
  heartbeat=$!
  case "${names[0]}" in
    kube-*|kubectl|kubelet|kubeadm) build_kube "${names[@]}" ;;
    *) "build_${names[0]}" ;;
  esac 2>&1 || { kill "$heartbeat"; echo "k8snb lab build: $label failed" >&2; exit 1; }
  kill "$heartbeat" 2>/dev/null || true
  heartbeat=
  for name in "${names[@]}"; do
    for o in $(outputs "$name"); do
      mv "$out/$o.tmp" "$out/$o"
      record "$o"
      [ "$o" != coredns ] || echo "$COREDNS_PLUGINS" > "$out/coredns.plugins"  # see have()
    done
  done
  took=$(( $(date +%s) - start ))
  echo "k8snb lab build: [$i/${#steps[@]}] $label built in $(fmt $took) (whole build $(fmt $(( $(date +%s) - build_start ))))"
  # Kept for bench/: the cold build is measured once, when it happens, not re-run by the benchmark.
  printf '%s\t%s\t%s\t%s\n' "${step// /+}" "$took" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$cache/$K8S_VERSION/build-times.tsv"
done
