#!/usr/bin/env bash
# Installs the Debian packages the test suite drives as real peers, without leaving their services running.
set -euo pipefail
need=()
command -v skopeo >/dev/null || need+=(skopeo)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v prometheus >/dev/null || need+=(prometheus)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)   # the Sentinel failover test
# Extra packages named on the command line (make bench-deps: nginx), each providing the command of its name.
for pkg in "$@"; do command -v "$pkg" >/dev/null || need+=("$pkg"); done
command -v strace >/dev/null || need+=(strace)   # the fuzz test traces wharf's file access
command -v podman >/dev/null || need+=(podman)   # registries.conf mirror test (run as root, vfs storage)
command -v chromium >/dev/null || need+=(chromium)   # the web UI end-to-end tests (driven by playwright-core; never a browser download)
# A real S3 implementation for the object-storage tests: OpenStack Swift with s3api (test/helpers/swift-s3.ts).
[ -x /usr/bin/swift-proxy-server ] && /usr/bin/python3 -c 'import swift' 2>/dev/null || need+=(swift swift-proxy swift-object swift-container swift-account python3-swift)
command -v memcached >/dev/null || need+=(memcached)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing test tools: ${need[*]} (run as root, or: apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  # Debian's docker-registry and prometheus packages start daemons on :5000 and :9090; a policy-rc.d
  # that answers 101 tells invoke-rc.d not to start anything during this install.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  # On a systemd host the units may still be enabled for next boot: disable and stop them.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    for unit in docker-registry prometheus prometheus-node-exporter redis-server nginx memcached swift-proxy swift-object swift-container swift-account; do
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
fi
