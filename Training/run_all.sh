#!/usr/bin/env bash
# Retrain everything on all four corpora (../shared/data), then export to Models/:
#   loco-tess, loco-savee, loco-urdu  one corpus held out each (leave one corpus out)
#   final                             every clip: the shipped model
#   fold1..fold5                      RAVDESS actors 01-04 ... 17-20 held out, the other corpora included
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
for which in "--corpus tess" "--corpus savee" "--corpus urdu" --final \
             "--fold 1" "--fold 2" "--fold 3" "--fold 4" "--fold 5"; do
  case $which in
    --final) name=final ;;
    --corpus*) name=loco-${which#--corpus } ;;
    *) name=fold${which#--fold } ;;
  esac
  [ -f "runs/$prefix$name.json" ] || python3 train.py $which "${precision[@]}" "$@"
done
python3 export.py "${export_flags[@]}"
