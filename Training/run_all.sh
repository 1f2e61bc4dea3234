#!/usr/bin/env bash
# Retrain everything on all four corpora (../shared/data), then export to Models/: the nine models of
# models.sh, one after another on this machine (Training/gpu.sh trains them side by side on a lent GPU).
# Resumable: re-running picks up each model from its last checkpoint. Extra flags go to train.py;
# with --speaker-norm it trains and exports the speaker-normalised variant (runs/sn-*).
# bf16 autocast is chosen where the CPU has AVX-512 BF16 or AMX (about 2x faster there, 6x slower elsewhere).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r requirements.txt
prefix="" export_flags=() precision=()
for flag in "$@"; do
  if [ "$flag" = --speaker-norm ]; then prefix=sn- export_flags=(--speaker-norm); fi
done
if grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then precision=(--bf16); fi
source models.sh
for model in "${MODELS[@]}"; do
  read -r name flags <<<"$model"
  [ -f "runs/$prefix$name.json" ] || python3 train.py $flags "${precision[@]}" "$@"
done
python3 export.py "${export_flags[@]}"
