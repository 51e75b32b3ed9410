# Sourced by scripts/demo.sh and scripts/test.sh: create the project virtual environment
# (.venv, reused when present), install the project into it when pyproject.toml changed,
# and activate it. A virtual environment because Debian's and Ubuntu's own Python refuses
# `pip install` outside one ("externally-managed-environment", PEP 668).
# Usage: source scripts/venv.sh EXTRAS   (EXTRAS: "" or "[dev]")

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: fairgate needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  echo "       (set PYTHON=/path/to/python3.11 and run again)" >&2
  exit 2
fi

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# A .venv without a working pip (e.g. left by a venv attempt before python3-venv was
# installed) is made again.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  echo "creating .venv with $("$PYTHON" --version 2>&1)" >&2
  if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
    # Debian and Ubuntu ship the venv module separately, in python3-venv.
    rm -rf .venv
    echo "installing Debian's python3-venv (apt-get)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
# shellcheck disable=SC1091
source .venv/bin/activate

stamp=".venv/.fairgate-installed$1"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing fairgate$1 into .venv (first run: a few minutes)" >&2
  python -m pip install --quiet --disable-pip-version-check --upgrade pip
  python -m pip install --quiet --disable-pip-version-check -e ".$1"
  touch "$stamp"
fi
