#!/usr/bin/env bash
# Retrain everything: the shipped model (all 20 actors) and the 5 actor folds, then export to Models/.
# Resumable: re-running picks up each model from its last checkpoint. Extra flags go to train.py;
# with --speaker-norm it trains and exports the speaker-normalised variant (runs/sn-*).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r requirements.txt
prefix="" export_flags=()
for flag in "$@"; do
  if [ "$flag" = --speaker-norm ]; then prefix=sn- export_flags=(--speaker-norm); fi
done
for which in --final "--fold 1" "--fold 2" "--fold 3" "--fold 4" "--fold 5"; do
  name=$prefix$([ "$which" = --final ] && echo final || echo "fold${which#--fold }")
  [ -f "runs/$name.json" ] || python3 train.py $which "$@"
done
python3 export.py "${export_flags[@]}"
