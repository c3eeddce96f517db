#!/usr/bin/env bash
# Train on one device (the GPU when there is one, else the CPU).
#   bash train.sh                          the synthetic quickstart
#   bash train.sh CONFIG [--resume] [KEY VALUE ...]
#   bash train.sh [--resume] [KEY VALUE ...]   the quickstart with overrides
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
CONFIG=config/quickstart.yaml
if [ $# -gt 0 ] && [[ $1 == *.yaml || $1 == *.yml ]]; then
  CONFIG=$1
  shift
fi
exec "$PY" tools/train_net.py --config-file "$CONFIG" "$@"
