#!/usr/bin/env bash
# Builds the Debian package crmgate_<version>_<arch>.deb from this source tree, offline, with Debian's
# own tools: a release build configured for the /usr prefix, then CPack's DEB generator (dpkg-shlibdeps
# computes the library dependencies).
#   deploy/build-deb.sh [BUILD_DIR [OUTPUT_DIR]]     default: build-deb and build-deb/packages
# Prints the path of the package on its last line.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build-deb}
out=${2:-$build/packages}
jobs=$(nproc 2>/dev/null || echo 2)

for tool in cmake cpack dpkg-deb dpkg-shlibdeps gzip; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (deploy/install-deps.sh installs it)" >&2; exit 1; }
done
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
      -DCRMGATE_TESTS=OFF -DCRMGATE_SANITIZE=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target crmgate crmgate_manpage >/dev/null
mkdir -p "$out"
(cd "$build" && cpack -G DEB -B "$out" >/dev/null)
deb=$(ls -t "$out"/crmgate_*.deb | head -1)
echo "$deb"
