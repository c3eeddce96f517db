#!/usr/bin/env bash
# Train on one device (the GPU when there is one, else the CPU).
#   bash train.sh                          the synthetic quickstart
#   bash train.sh CONFIG [--resume] [KEY VALUE ...]
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ $# -eq 0 ]; then
  set -- config/quickstart.yaml
fi
CONFIG=$1
shift
exec "$PY" tools/train_net.py --config-file "$CONFIG" "$@"
