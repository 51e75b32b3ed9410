#!/usr/bin/env bash
# Set up and run the main job: train the synthetic default if no model exists, serve it,
# and run the counterfactual prober against it. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
exec fairgate demo "$@"
