#!/usr/bin/env bash
# Evaluate a checkpoint on the config's test datasets.
#   bash inference.sh CONFIG CHECKPOINT [KEY VALUE ...]
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ $# -lt 2 ]; then
  echo "usage: bash inference.sh CONFIG CHECKPOINT [KEY VALUE ...]" >&2
  exit 2
fi
CONFIG=$1
CKPT=$2
shift 2
exec "$PY" tools/test_net.py --config-file "$CONFIG" --ckpt "$CKPT" "$@"
