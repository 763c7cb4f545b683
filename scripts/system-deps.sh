#!/usr/bin/env bash
# Installs the Debian packages flowscope's tests use as real peers and oracles.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
PACKAGES=(python3-venv python3-pip tcpdump tshark nfdump softflowd pmacct tcpreplay postgresql chromium clickhouse-server clickhouse-client default-jre-headless zookeeper)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${missing[*]}" >&2
$SUDO apt-get update -qq
# tshark asks whether non-root users may capture; answer non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
