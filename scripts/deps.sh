#!/bin/sh
# Installs the Debian packages kiln's tests and example need (idempotent; needs root).
set -eu
pkgs="busybox-static docker-registry skopeo umoci iptables iproute2 apache2-utils zstd bzip2 xz-utils attr openssl python3"
missing=""
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# Debian's docker-registry package starts a system service on :5000; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
