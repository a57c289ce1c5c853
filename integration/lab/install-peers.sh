#!/usr/bin/env bash
# Debian packages the tests and the lab use, plus any named as arguments.
# Idempotent; needs root.
set -euo pipefail
pkgs=(iproute2 iputils-ping procps python3 file curl "$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
