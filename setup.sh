#!/usr/bin/env bash
# Installs every system package emotion-monitor builds, runs or tests with, then builds the
# release binary at .build/release/emotion-monitor. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
packages=(pkg-config libasound2-dev libfftw3-dev libsndfile1-dev libsoxr-dev libopenblas-dev
          alsa-utils sox espeak-ng)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
swift build -c release --product emotion-monitor 2>&1 | grep -v '^\[' || true
test -x .build/release/emotion-monitor
