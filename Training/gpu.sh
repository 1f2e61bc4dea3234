#!/usr/bin/env bash
# The nine models of models.sh trained side by side on one lent GPU (the `device` tool: one call,
# minutes of device time, no ../shared there). Here, first:
#   python3 Training/opus.py pack ../shared/data .gpu/data      # about 50 MB of Opus
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#     soundfile==0.14.0 cffi==2.0.0 pycparser==2.23              # the device's PyTorch has no soundfile
# then `device run` with carry [.gpu, .whl] and the command `bash Training/gpu.sh SECONDS [TRAIN.PY FLAGS]`. Each run fits
# its epochs (up to --epochs) to a shared deadline SECONDS after the start; runs/ comes back in $OUT as
# 15 MB parts: `cat runs.tar.* | tar -xf - -C Training`, then `python3 Training/export.py` and
# `python3 Training/swift_cv.py` here. A run cut off by the watchdog resumes from its checkpoint.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-450}
shift  # the rest goes to train.py (e.g. --speaker-norm: the runs/sn-* models)
prefix=""
case " $* " in *" --speaker-norm "*) prefix=sn- ;; esac
deadline=$(( $(date +%s) + seconds ))
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -c 'import soundfile' 2>/dev/null ||
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
python3 Training/opus.py unpack .gpu/data /tmp/data || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p Training/runs
rm -f Training/runs/.*.loaded
source Training/models.sh
for model in "${MODELS[@]}"; do
  read -r name flags <<<"$model"
  python3 Training/train.py $flags --data /tmp/data --device "${DEVICE:-cuda}" --bf16 --threads 1 \
    --epochs "${EPOCHS:-240}" --deadline "$deadline" --peers "${#MODELS[@]}" "$@" >"Training/runs/$prefix$name.log" 2>&1 &
done
while [ -n "$(jobs -r)" ] && [ "$(date +%s)" -lt $((deadline + 60)) ]; do sleep 5; done
kill $(jobs -pr) 2>/dev/null
tail -n 4 Training/runs/*.log
tar -cf - -C Training runs | split -b 15m - "$OUT/runs.tar."
ls -l "$OUT"
