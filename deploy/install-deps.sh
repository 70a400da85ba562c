#!/usr/bin/env bash
# Installs the Debian packages crmgate needs to build, test and run, and only
# those that are missing. Safe to run again: with nothing missing it does nothing.
#   deploy/install-deps.sh            the packages below
#   deploy/install-deps.sh PKG...     these instead (tests/bench/run.sh installs its own this way)
set -euo pipefail

packages=(
    gcc make cmake pkg-config                  # toolchain
    libh2o-evloop-dev libjansson-dev libpcre2-dev libssl-dev libyaml-dev   # libraries (h2o 2.2.5 on Debian 12)
    curl nghttp2-client python3                # end-to-end tests: HTTP/1.1 and HTTP/2 clients, the harness
    python3-h2                                 # end-to-end tests: an HTTP/2 client library for the abuse tests
    cppcheck                                   # static analysis, run as a ctest
    libsystemd-dev                             # sd_notify: the systemd unit is Type=notify (optional at build time)
    systemd logrotate groff-base man-db        # deployment tests: systemd-analyze, a real logrotate run, crmgate(8)
    dpkg-dev python3-yaml binutils             # the Debian package (dpkg-shlibdeps), the manifests' parser, objdump
)
if [ $# -ne 0 ]; then
    packages=("$@")
fi

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages are installed"
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
