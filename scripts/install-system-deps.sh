#!/usr/bin/env bash
# Install the real servers the tests and the demo use, from Debian's packages, when missing:
# prometheus + promtool, prometheus-pushgateway, prometheus-alertmanager + amtool, and
# prometheus-node-exporter (its textfile collector reads what `push --textfile` writes).
# --no-install-recommends keeps it to ~60 MB instead of ~440 MB. No service is started.
set -euo pipefail
need=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need+=(prometheus-pushgateway)
command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-system-deps: need root (or sudo) to install: ${need[*]}" >&2; exit 1
  fi
fi
echo "install-system-deps: installing ${need[*]} (Debian packages)" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# A temporary policy-rc.d keeps the packages' postinst from starting system services (which
# would bind 0.0.0.0) on machines with an init system; the tests start their own on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
