#!/usr/bin/env bash
# Train on one device (the GPU when there is one, else the CPU).
#   bash train.sh                          the synthetic quickstart (both stages)
#   bash train.sh CONFIG [--resume] [KEY VALUE ...]
#   bash train.sh [--resume] [KEY VALUE ...]   the quickstart, overrides for stage 2
# The quickstart first pretrains its backbone (config/quickstart_pretrain.yaml; skipped
# when that run is already complete, resumed when it was interrupted), then trains the
# triplet embedding on it (config/quickstart.yaml).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
CONFIG=config/quickstart.yaml
if [ $# -gt 0 ] && [[ $1 == *.yaml || $1 == *.yml ]]; then
  CONFIG=$1
  shift
else
  # a mistake in the overrides for stage 2 is reported now, not after stage 1
  "$PY" tools/train_net.py --check --config-file "$CONFIG" "$@"
  "$PY" tools/train_net.py --config-file config/quickstart_pretrain.yaml --resume
fi
exec "$PY" tools/train_net.py --config-file "$CONFIG" "$@"
