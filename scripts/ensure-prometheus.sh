#!/bin/sh
# Make sure a real `prometheus` binary is on PATH: install the Debian package when we
# can (root + apt), otherwise say exactly how to get one.
set -eu
if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "prometheus not found: installing the Debian package 'prometheus'..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    exit 0
fi
cat >&2 <<MSG
prometheus is not on PATH and cannot be installed automatically (needs root and apt).
Install it, then run make again:
  Debian/Ubuntu:  sudo apt-get install prometheus
  macOS:          brew install prometheus
  anywhere:       put the 'prometheus' binary from a Prometheus release on PATH
MSG
exit 3
