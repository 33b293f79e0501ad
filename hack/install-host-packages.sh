#!/usr/bin/env bash
# Installs the host packages the local cluster needs besides the Go binaries: nftables
# (`nft`, which kube-proxy's nftables mode runs to write its rules). Debian's package, only
# when `nft` is missing, and only as root with apt-get (the cluster needs root anyway).
set -euo pipefail

"$(dirname "$0")/install-os-package.sh" nft nftables "the local cluster (kube-proxy's nftables mode)"
