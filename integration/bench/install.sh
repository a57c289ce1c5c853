#!/usr/bin/env bash
# Debian packages integration/bench/run.sh uses. Idempotent; needs root.
set -euo pipefail
exec bash "$(dirname "$0")/../lab/install-peers.sh" iperf3 nftables conntrack conntrackd keepalived
