#!/usr/bin/env bash
# Set up and run the main job: train the synthetic default if no model exists, serve it,
# and run the counterfactual prober against it. Ctrl-C stops everything.
# Installs into the project virtual environment .venv (see scripts/venv.sh); afterwards
# `source .venv/bin/activate` puts `fairgate` on your PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh ""
exec fairgate demo "$@"
