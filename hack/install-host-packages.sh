#!/usr/bin/env bash
# Installs the host packages the local cluster needs besides the Go binaries: nftables
# (`nft`, which kube-proxy's nftables mode runs to write its rules). Debian's package, only
# when `nft` is missing, and only as root with apt-get (the cluster needs root anyway).
set -euo pipefail

if command -v nft >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "error: the local cluster needs nft (install the nftables package)" >&2
  exit 1
fi
echo "installing nftables (kube-proxy's nftables mode needs nft)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nftables >/dev/null
