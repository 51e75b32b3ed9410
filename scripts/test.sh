#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine (what CI runs, via .ci/run).
# Installs into the project virtual environment .venv (see scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh "[dev]"
# The integration tests start a real Prometheus server and check rules with promtool.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "installing Debian's prometheus (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
# The decision-record tests start their own PostgreSQL server (Debian keeps its binaries
# in /usr/lib/postgresql/VERSION/bin, off the PATH).
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "installing Debian's postgresql (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
# The replica tests put their own HAProxy process in front of two servers (a generated
# config on a loopback port; the packaged service, whose default config listens on nothing,
# is not used). Debian installs it in /usr/sbin, off a user's PATH.
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  echo "installing Debian's haproxy (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
python -m ruff check .
python -m pytest "$@"
