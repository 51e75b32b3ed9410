#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine (what CI runs, via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# The integration tests start a real Prometheus server and check rules with promtool.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus >/dev/null
fi
python3 -m ruff check .
python3 -m pytest "$@"
