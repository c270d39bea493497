#!/usr/bin/env bash
# Install the host packages the lab's real nodes need, from the Debian archive apt already uses.
#
# Called by k8snb.lab.realnodes when a tool is missing, so a fresh machine or CI needs nothing by
# hand; safe to run again (apt-get skips what is installed). Needs root.
#
#   runc                         the OCI runtime each node's containerd (built by recipes/build.sh) calls
#   iptables, conntrack          kube-proxy's iptables mode, and the lab's own host rules
#   containernetworking-plugins  the CNI bridge, host-local and loopback plugins (/usr/lib/cni)
#   docker-registry              the local registry the nodes pull the lab's images from
#   debootstrap                  builds the images' Debian root filesystems (no Docker needed)
#
# `host-setup.sh kind` adds what `k8snb kind up` builds with: gcc and libseccomp-dev (runc is built
# with cgo and seccomp, as upstream builds it). `host-setup.sh docker.io` installs Debian's Docker
# engine, which only the test of the lab beside a running Docker engine uses (nothing starts it:
# services are not started by package scripts here, see below).
set -euo pipefail

PACKAGES=(runc iptables conntrack containernetworking-plugins docker-registry debootstrap iproute2)
case "${1:-}" in
  "") ;;
  kind) PACKAGES+=(gcc libc6-dev pkg-config libseccomp-dev) ;;
  docker.io) PACKAGES=(docker.io) ;;
  *) echo "k8snb lab host-setup: unknown group '$1' (kind, docker.io)" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "k8snb lab host-setup: needs root" >&2; exit 2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "k8snb lab host-setup: all host packages present"
  exit 0
fi

echo "k8snb lab host-setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# docker-registry ships a service listening on :5000 on every interface; the lab runs its own
# registry on the lab bridge only, so package scripts must not start services (exit 101 = deny).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "k8snb lab host-setup: done"
