#!/bin/sh
# Make sure the real servers the tests and the demo drive are on this machine:
# Prometheus, HAProxy and PostgreSQL (for Unleash), from Debian's packages when we can (root + apt), otherwise
# say exactly how to get them.
set -eu
missing=""
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing="$missing haproxy"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$missing postgresql"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the Debian packages:$missing ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    exit 0
fi
cat >&2 <<MSG
Missing on PATH and not installable automatically (needs root and apt):$missing
Install them, then run make again:
  Debian/Ubuntu:  sudo apt-get install$missing
  macOS:          brew install$missing
MSG
exit 3
