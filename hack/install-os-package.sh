#!/usr/bin/env bash
# Installs one Debian package when the command it provides is missing, only as root with
# apt-get: `hack/install-os-package.sh COMMAND PACKAGE WHY`. Used for the host tools of
# the local cluster (nftables) and of the benchmarks (wrk).
set -euo pipefail

command_name=$1 package=$2 why=$3
if command -v "$command_name" >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "error: $why needs $command_name (install the $package package)" >&2
  exit 1
fi
echo "installing $package ($why needs $command_name)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$package" >/dev/null
